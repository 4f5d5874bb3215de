/*
 * kept_executor.c
 *	  A view plan's executor, started once and rescanned for every batch.
 *
 * A batch of a few commits costs the worker an executor start-up per view
 * (aggregate transition setup, hash tables, the stream scan): on batches of
 * 16 pgbench clients' commits that was a sixth of its CPU.  So the executor
 * of a view's plan is kept between batches, in its own memory context, and
 * each batch only rescans it over the new events.
 *
 * What this relies on:
 * - ExecutorStart runs under a resource owner of our own that outlives
 *   transactions, since it holds the relation references the plan opened.
 *   It takes no locks (the plan's relations are opened with NoLock: the
 *   batch locks the stream and the view itself, each time).
 * - The executor has no registered snapshot; each run sets the batch's
 *   active snapshot and clears it after.
 * - Each run happens in the batch's transaction, under its resource owner.
 * - Each run ends with the rescan, still in its transaction, so that temporary
 *   files of a spilled hash table or sort are closed by the transaction that
 *   opened them.
 * - A run that fails leaves the executor in an unknown state: any abort of a
 *   top-level transaction throws all of them away (memory freed, references
 *   released) without ExecutorEnd.
 * - The plan reads nothing but the stream.  A scan of a joined table keeps
 *   the snapshot its first run began it with (a rescan does not take a new
 *   one), and each batch must see the tables as of its own snapshot: plans
 *   that join tables run in a fresh executor every time.
 * - The plan's permissions are checked again at each run: a role's
 *   membership revoked invalidates no plan.
 * - The caller ends a kept executor whenever the view's plan is replaced
 *   (the view cache is rebuilt after DDL), and does not use kept executors
 *   in a batch during which the cache was invalidated.
 *
 * JIT: a kept executor evaluates the same expressions over every event that
 * reaches the view, which is where compiled expressions pay off, but
 * compiling ten views with inlining and optimization takes the better part
 * of a second.  So an executor starts interpreted, and once it has run
 * stream_ext.jit_above_events events (with jit = on) it is ended and
 * started again, compiled (expressions and tuple deforming, inlined and
 * optimized).  Compiled code belongs to the executor's JIT context, which
 * is registered with our resource owner and goes with the executor.  The
 * planner itself never compiles in workers (jit_above_cost = -1), so plans
 * run once, such as the careful retry after an error, stay interpreted.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/executor.h"
#include "jit/jit.h"
#include "nodes/nodeFuncs.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "analyze/joins.h"
#include "guc.h"
#include "worker/kept_executor.h"

struct KeptExecutor
{
	MemoryContext cxt;			/* holds all of it */
	QueryDesc  *qd;				/* NULL until ExecutorStart succeeded */
	ParamListInfo params;		/* our copy, refilled for each run */
	uint64		events;			/* events run through it, and its predecessors
								 * since the view's plan was last replaced */
	bool		compiled;		/* started with JIT compilation */
	KeptExecutor **ref;			/* the caller's pointer to this */
	struct KeptExecutor *next;
};

static KeptExecutor *all_kept = NULL;
static LocalTransactionId last_compile_lxid = InvalidLocalTransactionId;
static ResourceOwner kept_owner = NULL;
static bool callback_registered = false;

static void
unlink_kept(KeptExecutor *k)
{
	for (KeptExecutor **p = &all_kept; *p != NULL; p = &(*p)->next)
	{
		if (*p == k)
		{
			*p = k->next;
			break;
		}
	}
	if (k->ref != NULL && *k->ref == k)
		*k->ref = NULL;
}

/* Throw every kept executor away, as after an error. */
static void
abandon_all(void)
{
	while (all_kept != NULL)
	{
		KeptExecutor *k = all_kept;

		unlink_kept(k);
		MemoryContextDelete(k->cxt);
	}
	if (kept_owner != NULL)
	{
		/*
		 * Relation references and JIT contexts, then tuple descriptor pins
		 * (released last).  isTopLevel: the owner has no parent, and holds
		 * no locks.
		 */
		ResourceOwnerRelease(kept_owner, RESOURCE_RELEASE_BEFORE_LOCKS, false, true);
		ResourceOwnerRelease(kept_owner, RESOURCE_RELEASE_LOCKS, false, true);
		ResourceOwnerRelease(kept_owner, RESOURCE_RELEASE_AFTER_LOCKS, false, true);
		ResourceOwnerDelete(kept_owner);
		kept_owner = NULL;
	}
}

static void
kept_xact_callback(XactEvent event, void *arg)
{
	/*
	 * Any abort, even of a transaction that did not run them: an error
	 * while processing invalidations (a dropped stream whose relcache entry
	 * a kept executor still references) must not recur batch after batch.
	 */
	if (event == XACT_EVENT_ABORT && all_kept != NULL)
		abandon_all();
}

/*
 * At process exit, before LLVM shuts down (an on_proc_exit callback, which
 * PANICs if a JIT context is still in use).
 */
static void
kept_at_exit(int code, Datum arg)
{
	/*
	 * A FATAL error can leave us in a kept executor's memory or resource
	 * owner, which AbortTransaction would have left before its callbacks.
	 */
	MemoryContextSwitchTo(TopMemoryContext);
	if (CurrentResourceOwner == kept_owner)
		CurrentResourceOwner = NULL;
	abandon_all();
}

/*
 * Mark every node of the plan as having a changed input, so that the rescan
 * recomputes everything: a hashed Agg whose input did not change would
 * otherwise return its previous hash table again, and a Sort its previous
 * sort.  Parameter 0 stands for the new batch; ExecReScan clears the mark
 * of each node as it rescans it.
 */
static bool
mark_input_changed(PlanState *ps, void *context)
{
	ps->chgParam = bms_add_member(ps->chgParam, 0);
	return planstate_tree_walker(ps, mark_input_changed, context);
}

/*
 * Rescan every marked node now, in the run's transaction, but the stream
 * scans, whose rescan takes the next run's batch.  ExecReScan of a node
 * leaves a marked child to be rescanned when next run: a Sort under an Agg
 * that went to disk would keep its temporary files past the transaction,
 * whose resource owner closes them at commit under the Sort (which closed
 * them again at the next run's rescan).
 */
static bool
rescan_now(PlanState *ps, void *context)
{
	if (IsA(ps, ForeignScanState))
		return false;
	if (ps->chgParam != NULL)
		ExecReScan(ps);
	return planstate_tree_walker(ps, rescan_now, context);
}

static void
copy_params(ParamListInfo to, ParamListInfo from)
{
	for (int i = 0; i < from->numParams; i++)
		to->params[i] = from->params[i];
}

/* Whether an executor that has run this many events should be compiled. */
static bool
worth_compiling(uint64 events)
{
	return jit_enabled && stream_ext_jit_above_events >= 0 &&
		events >= (uint64) stream_ext_jit_above_events;
}

/* A copy of plan with the JIT flags the planner sets for a costly plan. */
static PlannedStmt *
compiled_copy(PlannedStmt *plan)
{
	PlannedStmt *copy = palloc(sizeof(PlannedStmt));

	memcpy(copy, plan, sizeof(PlannedStmt));
	copy->jitFlags = PGJIT_PERFORM | PGJIT_OPT3 | PGJIT_INLINE;
	if (jit_expressions)
		copy->jitFlags |= PGJIT_EXPR;
	if (jit_tuple_deforming)
		copy->jitFlags |= PGJIT_DEFORM;
	return copy;
}

static KeptExecutor *
start_kept(PlannedStmt *plan, const char *source, ParamListInfo params, DestReceiver *dest,
		   bool compile)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext kept executor",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	ResourceOwner saved_owner = CurrentResourceOwner;
	KeptExecutor *k = palloc0(sizeof(KeptExecutor));

	k->cxt = cxt;
	k->next = all_kept;
	all_kept = k;
	if (params != NULL)
	{
		k->params = makeParamList(params->numParams);
		k->params->numParams = params->numParams;
		copy_params(k->params, params);
	}
	k->compiled = compile;
	if (kept_owner == NULL)
		kept_owner = ResourceOwnerCreate(NULL, "stream_ext kept executors");
	CurrentResourceOwner = kept_owner;
	PG_TRY();
	{
		QueryDesc  *qd = CreateQueryDesc(compile ? compiled_copy(plan) : plan,
										 pstrdup(source), InvalidSnapshot,
										 InvalidSnapshot, dest, k->params, NULL, 0);

		ExecutorStart(qd, EXEC_FLAG_SKIP_TRIGGERS);
		k->qd = qd;
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = saved_owner;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	return k;
}

/*
 * Run plan over the current batch of nevents events, sending its rows to
 * dest, with the executor kept in *kept (started and kept there if *kept is
 * NULL; started again, compiled, once it has run enough events).  Returns
 * false, doing nothing, if plan cannot be kept (it has subplans, whose
 * rescan needs parameters, or reads tables): the caller runs it once.
 * Must run in a transaction with an active snapshot, not in a
 * subtransaction.
 */
bool
kept_executor_run(KeptExecutor **kept, PlannedStmt *plan, const char *source,
				  ParamListInfo params, DestReceiver *dest, int nevents)
{
	KeptExecutor *k = *kept;
	uint64		events = 0;		/* run by the executor being replaced */
	EState	   *estate;
	MemoryContext oldcxt;

	if (plan->subplans != NIL || IsSubTransaction() || stream_rtable_joins_tables(plan->rtable))
		return false;
	if (!callback_registered)
	{
		RegisterXactCallback(kept_xact_callback, NULL);
		before_shmem_exit(kept_at_exit, (Datum) 0);
		callback_registered = true;
	}
	if (k != NULL && !k->compiled && worth_compiling(k->events) &&
		MyProc->lxid != last_compile_lxid)
	{
		/* one at a time: the views of a stream all get there in one batch */
		last_compile_lxid = MyProc->lxid;
		events = k->events;
		kept_executor_end(kept);
		k = NULL;
	}
	if (k == NULL)
	{
		k = start_kept(plan, source, params, dest, worth_compiling(events));
		k->events = events;
		k->ref = kept;
		*kept = k;
	}
	else
	{
		/*
		 * The owner's rights on the stream were checked when the executor
		 * started; they may have gone since without any invalidation of the
		 * plan (a role membership revoked): check them for every batch, as
		 * a new executor would.
		 */
		(void) ExecCheckRTPerms(plan->rtable, true);
		if (params != NULL)
			copy_params(k->params, params);
		k->qd->dest = dest;
	}
	estate = k->qd->estate;
	estate->es_snapshot = GetActiveSnapshot();
	ExecutorRun(k->qd, ForwardScanDirection, 0, false);
	estate->es_snapshot = InvalidSnapshot;
	k->events += nevents;

	/*
	 * Rescan now, in this transaction: a hashed Agg that spilled or a Sort
	 * that went to disk closes its temporary files, which belong to this
	 * transaction's resource owner, and the hash table is emptied.  The
	 * stream scan itself is rescanned lazily, at the next run, when it
	 * takes that run's batch.
	 */
	oldcxt = MemoryContextSwitchTo(estate->es_query_cxt);
	mark_input_changed(k->qd->planstate, NULL);
	(void) rescan_now(k->qd->planstate, NULL);
	MemoryContextSwitchTo(oldcxt);

	/*
	 * JIT contexts are created when the first expression is compiled,
	 * normally by ExecutorStart under kept_owner.  One created during a run
	 * belongs to this transaction and would be freed under the executor at
	 * commit: end the executor now instead of keeping it.
	 */
	if (estate->es_jit != NULL && estate->es_jit->resowner != kept_owner)
		kept_executor_end(kept);
	return true;
}

/* End the executor in *kept, if any, and free it; in a transaction. */
void
kept_executor_end(KeptExecutor **kept)
{
	KeptExecutor *k = *kept;
	ResourceOwner saved_owner = CurrentResourceOwner;

	if (k == NULL)
		return;
	unlink_kept(k);				/* clears *kept */
	if (k->qd != NULL)
	{
		CurrentResourceOwner = kept_owner;
		PG_TRY();
		{
			ExecutorFinish(k->qd);
			ExecutorEnd(k->qd);
		}
		PG_FINALLY();
		{
			CurrentResourceOwner = saved_owner;
		}
		PG_END_TRY();
	}
	MemoryContextDelete(k->cxt);
}
