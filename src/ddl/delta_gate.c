/*
 * delta_gate.c
 *	  Reads of one group skip the scans of the view's delta table when no
 *	  delta of that group can be there.
 *
 * The delta table has no index (window/state_tables.c says why), so a read
 * of one group scans it; the plan of a view that keeps its results does so
 * twice, and its filter of the result rows once more (ddl/changed_keys.c,
 * which asks shared memory first too).  When the planner sees a scan of a
 * delta table restricted to one key, every key column equal to a value
 * known before the scan (a constant, a parameter, an expression of them:
 * the key the reader asked for, pushed down from the view's WHERE), it adds
 * a gate above that scan: a one-time filter calling delta_may_have_key(the
 * delta table, the key), which asks shared memory (ipc/pending_keys.c)
 * whether the key may have deltas the reader's snapshot sees.  When it
 * cannot, the scan does not run.
 *
 * A key is hashed as writers hash it: by the default hash function of each
 * value's type, under the key column's collation.  So the gate is added
 * only where equality by the restriction's operator implies equal hashes:
 * the operator belongs to the hash family of the key column's type, the
 * value's type has its default hash function in the same family, and the
 * operator compares under the column's collation (or both are
 * deterministic, which compare bytes).
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/paths.h"
#include "optimizer/restrictinfo.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/typcache.h"

#include "catalog/catalog.h"
#include "ddl/delta_gate.h"
#include "ddl/key_memo.h"
#include "ipc/pending_keys.h"

PG_FUNCTION_INFO_V1(stream_ext_delta_may_have_key);

static set_rel_pathlist_hook_type prev_set_rel_pathlist_hook = NULL;

static bool
deterministic(Oid collation)
{
	return !OidIsValid(collation) || get_collation_isdeterministic(collation);
}

/*
 * Does a value_type hash as the key_type column (of key_collation) does,
 * for every value equal to a key?  Types of one hash family do under a
 * deterministic collation (they hash bytes); under another, only the key
 * type's own hash function hashes the collation's sort key.
 */
static bool
hashes_like_key(Oid key_type, Oid key_collation, Oid value_type)
{
	TypeCacheEntry *key = lookup_type_cache(key_type, TYPECACHE_HASH_OPFAMILY |
											TYPECACHE_HASH_PROC);
	TypeCacheEntry *value = lookup_type_cache(value_type, TYPECACHE_HASH_OPFAMILY |
											  TYPECACHE_HASH_PROC);

	if (!OidIsValid(key->hash_opf) || key->hash_opf != value->hash_opf ||
		!OidIsValid(value->hash_proc))
		return false;
	return deterministic(key_collation) || value->hash_proc == key->hash_proc;
}

/* Do hashes agree wherever opno (under collation) finds a key equal to a value_type? */
static bool
hashes_agree(Oid opno, Oid collation, Oid key_type, Oid key_collation, Oid value_type)
{
	if (!hashes_like_key(key_type, key_collation, value_type) ||
		!op_in_opfamily(opno, lookup_type_cache(key_type, TYPECACHE_HASH_OPFAMILY)->hash_opf))
		return false;
	return collation == key_collation || (deterministic(collation) && deterministic(key_collation));
}

static bool
is_column(Node *node, Index rti, AttrNumber attno)
{
	if (IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	return IsA(node, Var) && ((Var *) node)->varno == rti &&
		((Var *) node)->varattno == attno && ((Var *) node)->varlevelsup == 0;
}

/*
 * The value a restriction of rel sets key column attno of delta equal to
 * (as "column = value" or "value = column"), or NULL: an expression the
 * gate can compute before the scan, of neither columns nor volatile
 * functions nor subqueries (a constant, a parameter, '/u/' || $1).
 */
static Expr *
key_value(RelOptInfo *rel, Index rti, Oid delta, AttrNumber attno)
{
	Oid			key_type;
	int32		typmod;
	Oid			key_collation;
	ListCell   *lc;

	get_atttypetypmodcoll(delta, attno, &key_type, &typmod, &key_collation);
	foreach(lc, rel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst(lc);
		OpExpr	   *op = (OpExpr *) ri->clause;
		Node	   *value;

		if (ri->pseudoconstant || !IsA(op, OpExpr) || list_length(op->args) != 2)
			continue;
		if (is_column(linitial(op->args), rti, attno))
			value = lsecond(op->args);
		else if (is_column(lsecond(op->args), rti, attno))
			value = linitial(op->args);
		else
			continue;
		if (IsA(value, RelabelType))
			value = (Node *) ((RelabelType *) value)->arg;
		if ((IsA(value, Const) && ((Const *) value)->constisnull) ||
			!is_pseudo_constant_clause(value) || contain_subplans(value))
			continue;
		if (hashes_agree(op->opno, op->inputcollid, key_type, key_collation, exprType(value)))
			return (Expr *) copyObject(value);
	}
	return NULL;
}

static Oid
gate_function(void)
{
	Oid			argtypes[2] = {REGCLASSOID, ANYOID};

	return LookupFuncName(list_make2(makeString(STREAM_INTERNAL_SCHEMA),
									 makeString("delta_may_have_key")),
						  2, argtypes, true);
}

/*
 * The gate runs in the leader (it is parallel restricted: it reads the
 * catalog rows, which a worker would load anew): the scan is planned with
 * no partial path, and its paths as not parallel safe, so that neither a
 * Gather below the gate nor force_parallel_mode above it moves it to a
 * worker.  (The rel's paths were made before the hook, with the rel's
 * parallel safety of then.)
 */
static void
keep_out_of_parallel_workers(RelOptInfo *rel)
{
	ListCell   *lc;

	rel->consider_parallel = false;
	rel->partial_pathlist = NIL;
	foreach(lc, rel->pathlist)
		((Path *) lfirst(lc))->parallel_safe = false;
}

/*
 * set_rel_pathlist_hook: a scan of a delta table restricted to one key
 * gets a gating qual (a pseudoconstant: the plan puts it in a Result above
 * the scan, evaluated once per scan).
 */
static void
gate_delta_scan(PlannerInfo *root, RelOptInfo *rel, Index rti, RangeTblEntry *rte)
{
	Oid			view;
	int			key_count;
	Expr	   *first;
	List	   *args;
	Oid			func;
	FuncExpr   *gate;

	if (prev_set_rel_pathlist_hook)
		prev_set_rel_pathlist_hook(root, rel, rti, rte);
	/* in parallel mode (a function's query) the catalog could not be read */
	if (rel->reloptkind != RELOPT_BASEREL || rte->rtekind != RTE_RELATION ||
		rel->baserestrictinfo == NIL || !ActiveSnapshotSet() || IsInParallelMode() ||
		!stream_is_view_relation(rte->relid, VIEW_DELTA_TABLE))
		return;
	/* the first key first: the catalog is read only for a read of one key */
	first = key_value(rel, rti, rte->relid, 2);
	if (first == NULL)
		return;
	key_count = stream_catalog_delta_keys(rte->relid, &view);
	if (key_count <= 0)
		return;
	args = list_make2(makeConst(REGCLASSOID, -1, InvalidOid, sizeof(Oid),
								ObjectIdGetDatum(rte->relid), false, true),
					  first);
	for (AttrNumber attno = 3; attno <= key_count + 1; attno++)
	{
		Expr	   *value = key_value(rel, rti, rte->relid, attno);

		if (value == NULL)
			return;
		args = lappend(args, value);
	}
	func = gate_function();
	if (!OidIsValid(func))
		return;
	gate = makeFuncExpr(func, BOOLOID, args, InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	rel->baserestrictinfo = lappend(rel->baserestrictinfo,
									make_restrictinfo(root, (Expr *) gate, true, false, true,
													  0, NULL, NULL, NULL));
	root->hasPseudoConstantQuals = true;
	keep_out_of_parallel_workers(rel);
}

void
stream_delta_gate_init(void)
{
	prev_set_rel_pathlist_hook = set_rel_pathlist_hook;
	set_rel_pathlist_hook = gate_delta_scan;
}

/* What one call site of delta_may_have_key found out on its first call */
typedef struct GateSite
{
	Oid			delta;
	bool		usable;			/* false: every key may have deltas */
	PendingKeyHash hash;
	Oid		   *types;			/* of the values */
	Datum	   *keys;
	bool	   *isnull;
} GateSite;

/*
 * Can this call site answer for delta?  Only for the reader of the view
 * (the answer tells whether a key was written lately), on a primary (a
 * standby's shared memory knows no writes), outside parallel mode (the
 * catalog rows may have to be read again, which needs a new snapshot),
 * with one value per key of a type whose hash agrees with the key
 * column's.
 */
static GateSite *
gate_site(FunctionCallInfo fcinfo, Oid delta)
{
	GateSite   *site = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(GateSite));
	int			nkeys = PG_NARGS() - 1;
	Oid			view;

	site->delta = delta;
	fcinfo->flinfo->fn_extra = site;
	if (RecoveryInProgress() || IsInParallelMode() || get_fn_expr_variadic(fcinfo->flinfo) ||
		!stream_is_view_relation(delta, VIEW_DELTA_TABLE))
		return site;
	if (nkeys <= 0 || stream_catalog_delta_keys(delta, &view) != nkeys ||
		pg_class_aclcheck(view, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		return site;
	stream_pending_key_hash_alloc(&site->hash, nkeys, fcinfo->flinfo->fn_mcxt);
	site->keys = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(Datum) * nkeys);
	site->isnull = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(bool) * nkeys);
	site->types = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(Oid) * nkeys);
	for (int i = 0; i < nkeys; i++)
	{
		Oid			value_type = get_fn_expr_argtype(fcinfo->flinfo, i + 1);
		Oid			key_type;
		int32		typmod;
		Oid			collation;

		site->types[i] = value_type;
		get_atttypetypmodcoll(delta, i + 2, &key_type, &typmod, &collation);
		if (!OidIsValid(value_type) || !OidIsValid(key_type) ||
			!hashes_like_key(key_type, collation, value_type) ||
			!stream_pending_key_hash_column(&site->hash, i, value_type, collation,
											fcinfo->flinfo->fn_mcxt))
			return site;
	}
	site->usable = true;
	return site;
}

/*
 * delta_may_have_key(delta regclass, VARIADIC keys "any"): may delta hold
 * deltas of this key that the current snapshot sees?  True when it cannot
 * tell.
 */
Datum
stream_ext_delta_may_have_key(PG_FUNCTION_ARGS)
{
	GateSite   *site = fcinfo->flinfo->fn_extra;
	Oid			delta;
	uint32		hash;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(true);
	delta = PG_GETARG_OID(0);
	if (site == NULL || site->delta != delta)
		site = gate_site(fcinfo, delta);
	if (!site->usable)
		PG_RETURN_BOOL(true);
	for (int i = 0; i < site->hash.nkeys; i++)
	{
		if (PG_ARGISNULL(i + 1))
			PG_RETURN_BOOL(true);
		site->keys[i] = PG_GETARG_DATUM(i + 1);
		site->isnull[i] = false;
	}
	hash = stream_pending_key_hash(&site->hash, site->keys, site->isnull);
	/* a scan of this read for the key found none: key_memo.c */
	PG_RETURN_BOOL(stream_pending_key_may_have_deltas(delta, hash) &&
				   !stream_key_memo_absent(delta, hash, site->hash.nkeys, site->types,
										   site->keys));
}
