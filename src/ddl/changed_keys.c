/*
 * changed_keys.c
 *	  Which rows of a result table a read may take as they are: those of
 *	  groups no delta the reader's snapshot sees changes.
 *
 * A view that keeps its results (ddl/read_view.c) reads a group's row from
 * its result table unless a visible delta changes the group, and combines
 * the others from their state rows and deltas.  Written as an anti-join of
 * the result table with the visible deltas, a whole-view read hashed every
 * row's key into the join and passed every row through a subquery scan
 * above it (a member of a UNION ALL with a WHERE of its own is not pulled
 * up into the append).  Instead the read's WHERE, pushed down into the
 * plain scan of the result table, calls
 *
 *	 delta_changes_key(delta, columns, VARIADIC keys)
 *
 * per row: does a delta the current snapshot sees, in delta's columns
 * (their attribute numbers), hold these keys?  True for a NULL key too
 * (those groups are always combined: equality does not match them).  Its
 * first calls ask shared memory (ipc/pending_keys.c), as the gate of key
 * lookups does (ddl/delta_gate.c), so that reading one group does not scan
 * the delta table; the first that shared memory cannot answer scans the
 * deltas for its own key.  After that, or after a few calls, it reads the
 * visible deltas' keys once into a hash set, probed by a bitmap first, and
 * answers every later call from it.
 *
 * The answer tells whether a key was written lately, which only readers of
 * the view may know: delta_changes_key refuses other roles, checked when the
 * call is planned (and at its first call, when it was not planned for a
 * reader), so that a cursor a reader opened answers whoever fetches from it,
 * as with tables, whose privileges are checked when the query starts.
 * Reads through a view another role owns run as a role that may not read
 * the view itself, so the read keeps the anti-join as well, and
 *
 *	 delta_read_allowed(delta)
 *
 * chooses between the two: the planner folds it into a constant, and the
 * member of the read it excludes is not planned at all.  Both make the plan
 * one for the current role (as plans of tables with row security are), made
 * again when the view's privileges change.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/pathnodes.h"
#include "nodes/supportnodes.h"
#include "parser/parse_oper.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/typcache.h"
#include "utils/xid8.h"

#include "agg/combine.h"
#include "catalog/catalog.h"
#include "ddl/changed_keys.h"
#include "ddl/key_memo.h"
#include "ipc/pending_keys.h"

PG_FUNCTION_INFO_V1(stream_ext_delta_changes_key);
PG_FUNCTION_INFO_V1(stream_ext_delta_read_allowed);
PG_FUNCTION_INFO_V1(stream_ext_delta_read_support);

/*
 * Calls answered from shared memory before the deltas are read into the
 * set; of those, how many shared memory cannot answer may scan the deltas
 * for their own key (a read of one group, as its plan's gated scans do)
 */
#define GATE_CALLS 16
#define KEY_SCANS 1

/* The keys of the visible deltas: open addressing on the hash */
typedef struct KeyEntry
{
	uint32		hash;
	Datum	   *keys;			/* NULL: free */
} KeyEntry;

/* What one call site of delta_changes_key keeps between calls */
typedef struct ChangedKeys
{
	Oid			delta;
	Oid			view;
	bool		planned_for_reader; /* planned_for_reader() */
	Oid			checked_user;	/* else the role found to read the view */
	int			nkeys;
	AttrNumber *columns;		/* in delta */
	PendingKeyHash hash;		/* as writers hash keys */
	FmgrInfo   *equal;			/* each key type's equality */
	Oid		   *types;
	int16	   *typlen;
	bool	   *typbyval;
	bool		gate_usable;	/* the columns are delta's keys, in order */
	int			calls;
	int			key_scans;
	bool		loaded;
	MemoryContext cxt;
	Datum	   *keys;
	/* the set, once loaded */
	int			count;
	uint32		table_mask;
	KeyEntry   *table;
	uint32		bitmap_mask;	/* in bits */
	uint64	   *bitmap;
} ChangedKeys;

/*
 * Can a read match values of type against a delta's keys here?  When the
 * type's equality (the one a view groups by) hashes: its default hash
 * function is of the same family.
 */
bool
stream_changed_keys_hashable(Oid type)
{
	Oid			eqop;
	bool		hashable;
	TypeCacheEntry *tc;

	get_sort_group_operators(type, false, false, false, NULL, &eqop, NULL, &hashable);
	if (!OidIsValid(eqop) || !hashable)
		return false;
	tc = lookup_type_cache(type, TYPECACHE_HASH_OPFAMILY | TYPECACHE_HASH_PROC);
	return OidIsValid(tc->hash_proc) && OidIsValid(tc->hash_opf) &&
		op_in_opfamily(eqop, tc->hash_opf);
}

/*
 * The view whose delta table delta is, and its key count; errors when delta
 * is no delta table
 */
static Oid
delta_view(Oid delta, int *key_count)
{
	Oid			view = InvalidOid;

	*key_count = stream_is_view_relation(delta, VIEW_DELTA_TABLE) ?
		stream_catalog_delta_keys_anywhere(delta, &view) : -1;
	if (*key_count < 1 || !OidIsValid(view))
	{
		char	   *name = get_rel_name(delta);

		/* a delta table the catalog has no view for: a failed restore */
		if (name == NULL || OidIsValid(view) ||
			!stream_is_view_relation(delta, VIEW_DELTA_TABLE))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("relation with OID %u is not the delta table of a continuous view with keys",
							delta)));
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("relation \"%s\" is not the delta table of a continuous view with keys", name),
				 errdetail("The catalog of continuous views has no view for it."),
				 errhint("If this database was restored from a dump, the restore of stream_ext's catalog failed (pg_restore reported why): fix the cause in the source database and restore again.")));
	}
	return view;
}

/* May the current user read view?  With complain, an error if not. */
static bool
may_read(Oid view, bool complain)
{
	AclResult	acl = pg_class_aclcheck(view, GetUserId(), ACL_SELECT);

	if (acl != ACLCHECK_OK && complain)
		aclcheck_error(acl, OBJECT_VIEW, get_rel_name(view));
	return acl == ACLCHECK_OK;
}

/*
 * Was this call planned for a role that may read the view?  The planner
 * support function marks such a call (its plan then made again for another
 * role, or when the view's privileges change): as a function called with
 * SQL's own syntax, which no SQL can write for this function.  So a cursor
 * opened by a reader answers whoever fetches from it, as the read of a
 * table does.
 */
static bool
planned_for_reader(FmgrInfo *flinfo)
{
	return flinfo->fn_expr != NULL && IsA(flinfo->fn_expr, FuncExpr) &&
		((FuncExpr *) flinfo->fn_expr)->funcformat == COERCE_SQL_SYNTAX;
}

/* The attribute numbers of columns (int2[]), each a key column of delta */
static AttrNumber *
key_columns(ArrayType *columns, Relation delta, int key_count, int nkeys, MemoryContext cxt)
{
	AttrNumber *attnums = MemoryContextAlloc(cxt, sizeof(AttrNumber) * nkeys);
	Datum	   *values;
	bool	   *nulls;
	int			n;

	if (ARR_NDIM(columns) > 1 || ARR_ELEMTYPE(columns) != INT2OID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("columns must be a one-dimensional smallint array")));
	deconstruct_array(columns, INT2OID, sizeof(int16), true, TYPALIGN_SHORT,
					  &values, &nulls, &n);
	if (n != nkeys)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("delta_changes_key takes one key per column"),
				 errdetail("Columns: %d; keys: %d.", n, nkeys)));
	for (int i = 0; i < n; i++)
	{
		AttrNumber	attnum;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("columns must not contain NULL")));
		attnum = DatumGetInt16(values[i]);
		/* the writer, then the keys */
		if (attnum < 2 || attnum > key_count + 1 ||
			attnum > RelationGetNumberOfAttributes(delta) ||
			TupleDescAttr(RelationGetDescr(delta), attnum - 1)->attisdropped)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%d is not a key column of the delta table", attnum)));
		attnums[i] = attnum;
	}
	return attnums;
}

/*
 * Are the delta table and the columns constants of the call (as in a view's
 * read), so that a call site answers for one table and one set of columns?
 */
static bool
constant_arguments(FmgrInfo *flinfo)
{
	List	   *args;

	if (flinfo->fn_expr == NULL || !IsA(flinfo->fn_expr, FuncExpr))
		return false;
	args = ((FuncExpr *) flinfo->fn_expr)->args;
	return list_length(args) >= 2 && IsA(linitial(args), Const) && IsA(lsecond(args), Const);
}

/*
 * Set up a call site: the arguments checked (the keys of the columns' own
 * types, each hashable), the reader's right to know checked.
 */
static ChangedKeys *
changed_keys_site(FunctionCallInfo fcinfo, Oid delta)
{
	MemoryContext cxt = fcinfo->flinfo->fn_mcxt;
	ChangedKeys *site;
	int			nkeys = PG_NARGS() - 2;
	Relation	rel;
	TupleDesc	desc;
	int			key_count;
	Oid			view;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("columns must not be NULL")));
	if (!constant_arguments(fcinfo->flinfo))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("delta and columns must be constants")));
	if (nkeys < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("delta_changes_key takes at least one key")));
	if (get_fn_expr_variadic(fcinfo->flinfo))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("delta_changes_key takes its keys as separate arguments")));
	view = delta_view(delta, &key_count);
	site = MemoryContextAllocZero(cxt, sizeof(ChangedKeys));
	site->cxt = AllocSetContextCreate(cxt, "stream_ext changed keys", ALLOCSET_DEFAULT_SIZES);
	cxt = site->cxt;
	site->delta = delta;
	site->view = view;
	site->planned_for_reader = planned_for_reader(fcinfo->flinfo);
	if (!site->planned_for_reader)
	{
		may_read(view, true);
		site->checked_user = GetUserId();
	}
	site->nkeys = nkeys;
	rel = table_open(delta, AccessShareLock);
	desc = RelationGetDescr(rel);
	site->columns = key_columns(PG_GETARG_ARRAYTYPE_P(1), rel, key_count, nkeys, cxt);
	stream_pending_key_hash_alloc(&site->hash, nkeys, cxt);
	site->equal = MemoryContextAllocZero(cxt, sizeof(FmgrInfo) * nkeys);
	site->types = MemoryContextAlloc(cxt, sizeof(Oid) * nkeys);
	site->typlen = MemoryContextAlloc(cxt, sizeof(int16) * nkeys);
	site->typbyval = MemoryContextAlloc(cxt, sizeof(bool) * nkeys);
	site->keys = MemoryContextAlloc(cxt, sizeof(Datum) * nkeys);
	site->gate_usable = true;
	for (int i = 0; i < nkeys; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, site->columns[i] - 1);
		Oid			eqop;

		if (get_fn_expr_argtype(fcinfo->flinfo, i + 2) != att->atttypid)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("key %d is not of the type of column \"%s\"", i + 1,
							NameStr(att->attname))));
		if (!stream_changed_keys_hashable(att->atttypid))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the equality of column \"%s\" does not hash",
							NameStr(att->attname))));
		/* hashable, so it has a hash function */
		stream_pending_key_hash_column(&site->hash, i, att->atttypid, att->attcollation, cxt);
		get_sort_group_operators(att->atttypid, false, true, false, NULL, &eqop, NULL, NULL);
		fmgr_info_cxt(get_opcode(eqop), &site->equal[i], cxt);
		site->types[i] = att->atttypid;
		site->typlen[i] = att->attlen;
		site->typbyval[i] = att->attbyval;
		if (site->columns[i] != i + 2)
			site->gate_usable = false;
	}
	table_close(rel, AccessShareLock);

	/*
	 * Shared memory knows the keys writers hash: all of the delta's, in
	 * order; on a primary, and outside parallel mode (where the catalog rows
	 * the gate reads could not be loaded).
	 */
	if (key_count != nkeys || RecoveryInProgress() || IsInParallelMode())
		site->gate_usable = false;
	fcinfo->flinfo->fn_extra = site;
	return site;
}

static bool
keys_equal(ChangedKeys *site, const Datum *a, const Datum *b)
{
	for (int i = 0; i < site->nkeys; i++)
		if (!DatumGetBool(FunctionCall2Coll(&site->equal[i], site->hash.collations[i],
											a[i], b[i])))
			return false;
	return true;
}

/* The entry of keys (hash), or the free entry where they would go */
static KeyEntry *
find_entry(ChangedKeys *site, uint32 hash, const Datum *keys)
{
	for (uint32 i = hash & site->table_mask;; i = (i + 1) & site->table_mask)
	{
		KeyEntry   *e = &site->table[i];

		if (e->keys == NULL || (e->hash == hash && keys_equal(site, e->keys, keys)))
			return e;
	}
}

static void
grow_table(ChangedKeys *site)
{
	KeyEntry   *old = site->table;
	uint32		old_size = site->table ? site->table_mask + 1 : 0;
	uint32		size = Max(old_size * 2, 64);

	site->table = MemoryContextAllocZero(site->cxt, sizeof(KeyEntry) * size);
	site->table_mask = size - 1;
	for (uint32 i = 0; i < old_size; i++)
		if (old[i].keys != NULL)
			*find_entry(site, old[i].hash, old[i].keys) = old[i];
	if (old)
		pfree(old);
}

static void
add_key(ChangedKeys *site, uint32 hash, const Datum *keys)
{
	KeyEntry   *e;
	MemoryContext old;

	if (site->table == NULL || (uint32) site->count * 2 >= site->table_mask + 1)
		grow_table(site);
	e = find_entry(site, hash, keys);
	if (e->keys != NULL)
		return;
	e->hash = hash;
	old = MemoryContextSwitchTo(site->cxt);
	e->keys = palloc(sizeof(Datum) * site->nkeys);
	for (int i = 0; i < site->nkeys; i++)
		e->keys[i] = datumCopy(keys[i], site->typbyval[i], site->typlen[i]);
	MemoryContextSwitchTo(old);
	site->count++;
}

/*
 * Call row(site, slot, arg) for each row of the delta table the current
 * snapshot sees, until it returns false.
 */
typedef bool (*DeltaRowFn) (ChangedKeys *site, TupleTableSlot *slot, void *arg);

static void
scan_deltas(ChangedKeys *site, DeltaRowFn row, void *arg)
{
	Snapshot	snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	Relation	rel = table_open(site->delta, AccessShareLock);
	TableScanDesc scan = table_beginscan(rel, snapshot, 0, NULL);
	TupleTableSlot *slot = table_slot_create(rel, NULL);

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		CHECK_FOR_INTERRUPTS();
		if (!row(site, slot, arg))
			break;
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	table_close(rel, AccessShareLock);
}

/* The keys of a delta row into keys; false when one is NULL */
static bool
row_keys(ChangedKeys *site, TupleTableSlot *slot, Datum *keys)
{
	bool		isnull = false;

	for (int i = 0; i < site->nkeys && !isnull; i++)
		keys[i] = slot_getattr(slot, site->columns[i], &isnull);
	return !isnull;
}

/* Did the writer of a delta row commit, as the current snapshot sees it? */
static bool
row_writer_visible(TupleTableSlot *slot)
{
	bool		isnull;
	Datum		writer = slot_getattr(slot, 1, &isnull);

	return !isnull && stream_writer_visible(DatumGetFullTransactionId(writer));
}

/* What load_changed_keys's rows share */
typedef struct LoadRows
{
	MemoryContext per_row;
	Datum	   *keys;
} LoadRows;

static bool
load_row(ChangedKeys *site, TupleTableSlot *slot, void *arg)
{
	LoadRows   *load = arg;
	MemoryContext old;

	if (!row_writer_visible(slot) || !row_keys(site, slot, load->keys))
		return true;
	/* hashes and equality (detoasting) in per_row, the set in site->cxt */
	old = MemoryContextSwitchTo(load->per_row);
	add_key(site, stream_pending_key_hash(&site->hash, load->keys, NULL), load->keys);
	MemoryContextSwitchTo(old);
	MemoryContextReset(load->per_row);
	return true;
}

/*
 * Read the keys of every delta the current snapshot sees, its writer
 * committed as that snapshot sees it, into the set; then the bitmap, 16
 * bits per key, that most probes of other keys stop at.
 */
static void
load_changed_keys(ChangedKeys *site)
{
	MemoryContext old = MemoryContextSwitchTo(site->cxt);
	LoadRows	load;
	uint32		bits;

	load.per_row = AllocSetContextCreate(site->cxt, "stream_ext delta row", ALLOCSET_SMALL_SIZES);
	load.keys = palloc(sizeof(Datum) * site->nkeys);
	scan_deltas(site, load_row, &load);
	MemoryContextDelete(load.per_row);
	pfree(load.keys);

	for (bits = 64; bits < (uint32) site->count * 16 && bits < (1U << 30); bits *= 2)
		;
	site->bitmap_mask = bits - 1;
	site->bitmap = palloc0(bits / 8);
	if (site->table)
		for (uint32 i = 0; i <= site->table_mask; i++)
			if (site->table[i].keys != NULL)
				site->bitmap[(site->table[i].hash & site->bitmap_mask) / 64] |=
					UINT64CONST(1) << (site->table[i].hash & 63);
	site->loaded = true;
	MemoryContextSwitchTo(old);
}

/* What scan_for_key's rows share */
typedef struct KeyScan
{
	const Datum *keys;
	Datum	   *row;
	bool		found;
	bool		any;			/* a row of these keys, its writer visible or not */
} KeyScan;

static bool
key_row(ChangedKeys *site, TupleTableSlot *slot, void *arg)
{
	KeyScan    *scan = arg;

	if (row_keys(site, slot, scan->row) && keys_equal(site, scan->keys, scan->row))
	{
		scan->any = true;
		scan->found = row_writer_visible(slot);
	}
	return !scan->found;
}

/*
 * Does a delta the current snapshot sees hold keys (of this hash)?  A scan
 * of the deltas for one key: equality first, the writer's status only for
 * equal keys.  When the snapshot sees no row of the key at all (a writer
 * not visible or not), no scan of the delta table restricted to the key
 * finds one: the gated scans of the same snapshot need not run
 * (key_memo.c).
 */
static bool
scan_for_key(ChangedKeys *site, const Datum *keys, uint32 hash)
{
	KeyScan		scan = {keys, palloc(sizeof(Datum) * site->nkeys), false, false};

	scan_deltas(site, key_row, &scan);
	pfree(scan.row);
	if (!scan.any)
		stream_key_memo_note_absent(site->delta, hash, site->nkeys, site->types, keys,
									site->typlen, site->typbyval);
	return scan.found;
}

/*
 * delta_changes_key(delta regclass, columns int2[], VARIADIC keys "any"):
 * does a delta the current snapshot sees hold these keys in these columns
 * (or is a key NULL)?  Only for roles that may read delta's view.
 *
 * A call site reads the deltas once, so it answers for the snapshot of its
 * first read: a query's, for the query's life.  So delta and columns are
 * constants (as in a view's read): one call site, one table and one set of
 * columns; and the plan of a call depends on the role (see the support
 * function), which PL/pgSQL does not keep from statement to statement as
 * it keeps simple expressions.
 */
Datum
stream_ext_delta_changes_key(PG_FUNCTION_ARGS)
{
	ChangedKeys *site = fcinfo->flinfo->fn_extra;
	Oid			delta;
	uint32		hash;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	delta = PG_GETARG_OID(0);
	if (site == NULL)
		site = changed_keys_site(fcinfo, delta);
	else if (!site->planned_for_reader && site->checked_user != GetUserId())
	{
		/* a call site kept across calls of several roles (PL/pgSQL) */
		may_read(site->view, true);
		site->checked_user = GetUserId();
	}
	for (int i = 0; i < site->nkeys; i++)
	{
		if (PG_ARGISNULL(i + 2))
			PG_RETURN_BOOL(true);
		site->keys[i] = PG_GETARG_DATUM(i + 2);
	}
	if (site->loaded && site->count == 0)
		PG_RETURN_BOOL(false);
	hash = stream_pending_key_hash(&site->hash, site->keys, NULL);
	if (!site->loaded)
	{
		if (site->gate_usable && site->calls++ < GATE_CALLS)
		{
			if (!stream_pending_key_may_have_deltas(delta, hash))
				PG_RETURN_BOOL(false);
			if (site->key_scans++ < KEY_SCANS)
				PG_RETURN_BOOL(scan_for_key(site, site->keys, hash));
		}
		load_changed_keys(site);
		if (site->count == 0)
			PG_RETURN_BOOL(false);
	}
	if ((site->bitmap[(hash & site->bitmap_mask) / 64] & (UINT64CONST(1) << (hash & 63))) == 0)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(find_entry(site, hash, site->keys)->keys != NULL);
}

/*
 * delta_read_allowed(delta regclass): may the current user read the view
 * whose delta table delta is?
 */
Datum
stream_ext_delta_read_allowed(PG_FUNCTION_ARGS)
{
	int			key_count;

	PG_RETURN_BOOL(may_read(delta_view(PG_GETARG_OID(0), &key_count), false));
}

/*
 * The support function of both, when planned.  delta_read_allowed(constant)
 * becomes a constant; delta_changes_key, planned for a role that may read
 * the view, is marked so (planned_for_reader).  Either makes the plan one
 * for the current role, made again when the view's privileges change.
 * delta_changes_key is rare (the groups with visible deltas are few next to
 * the view's).
 */
Datum
stream_ext_delta_read_support(PG_FUNCTION_ARGS)
{
	Node	   *rawreq = (Node *) PG_GETARG_POINTER(0);

	if (IsA(rawreq, SupportRequestSimplify))
	{
		SupportRequestSimplify *req = (SupportRequestSimplify *) rawreq;
		List	   *args = req->fcall->args;
		Node	   *arg = args != NIL ? linitial(args) : NULL;
		int			key_count;
		Oid			view;
		bool		allowed;
		FuncExpr   *marked;

		if (req->root == NULL || arg == NULL || !IsA(arg, Const) || ((Const *) arg)->constisnull)
			PG_RETURN_POINTER(NULL);
		view = delta_view(DatumGetObjectId(((Const *) arg)->constvalue), &key_count);
		allowed = may_read(view, false);
		req->root->glob->dependsOnRole = true;
		/* a direct call's plan does not read the view: follow its privileges */
		req->root->glob->relationOids = lappend_oid(req->root->glob->relationOids, view);
		if (list_length(args) == 1)
			PG_RETURN_POINTER(makeBoolConst(allowed, false));
		if (!allowed)
			PG_RETURN_POINTER(NULL);
		marked = makeFuncExpr(req->fcall->funcid, req->fcall->funcresulttype, args,
							  req->fcall->funccollid, req->fcall->inputcollid,
							  COERCE_SQL_SYNTAX);
		marked->funcvariadic = req->fcall->funcvariadic;
		marked->location = req->fcall->location;
		PG_RETURN_POINTER(marked);
	}
	if (IsA(rawreq, SupportRequestSelectivity))
	{
		SupportRequestSelectivity *req = (SupportRequestSelectivity *) rawreq;

		if (list_length(req->args) < 3)
			PG_RETURN_POINTER(NULL);
		req->selectivity = 0.0;
		PG_RETURN_POINTER(req);
	}
	PG_RETURN_POINTER(NULL);
}
