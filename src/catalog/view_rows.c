/*
 * view_rows.c
 *	  The rows of stream_ext_internal.continuous_views: the one reader (a
 *	  per-process cache) and the one writer.
 *
 * The cache is loaded at first use and kept until a relcache invalidation
 * of the catalog table (stream_catalog_changed(), sent by every DDL that
 * changes the set of views), of a cached view (ALTER VIEW ... OWNER TO or
 * RENAME change what a row shows) or of its stream (a renamed column
 * renames the view's time column).  The callback only marks the cache stale;
 * it is reloaded at the next call of stream_catalog_views(), so a list the
 * caller got stays valid until it calls again.  Callers run inside a
 * transaction.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "executor/tuptable.h"

#include "catalog/catalog.h"

/* The window columns of a catalog row, as text, in WindowSpecText's order */
#define WINDOW_TEXT_COLUMNS \
	"v.window_kind, " STREAM_INTERNAL_SCHEMA ".time_column(v.stream, v.time_attnum), " \
	"v.window_size::text, v.window_step::text, v.ttl::text, v.ttl_column, " \
	"v.allowed_lateness::text, v.keep_late::text"

static MemoryContext rows_cxt = NULL;
static List *cached_rows = NIL;
static bool rows_valid = false;
static Oid	cached_catalog_relid = InvalidOid;

/*
 * The search_path the rows were read under: the names in them (regclass as
 * text) follow it, so a caller under another path (a writer's own apply of
 * transforms pins pg_catalog, worker/writer_apply.c) reads them again.
 */
static char *rows_search_path = NULL;

/*
 * A second cache, of what reads of one group ask at every planning and
 * execution (ddl/delta_gate.c): each delta table's view and key count.
 * Nothing in it follows the search_path, so it is not read again when the
 * path changes (a session per tenant schema changes it for every
 * transaction, and reading every row again costs milliseconds).
 */
typedef struct DeltaKeys
{
	Oid			delta;
	Oid			view;
	int			key_count;
} DeltaKeys;

static DeltaKeys *delta_keys = NULL;	/* in TopMemoryContext */
static int	ndelta_keys = 0;
static bool keys_valid = false;
static Oid	keys_catalog_relid = InvalidOid;
static bool callback_registered = false;

static void
invalidate_rows(Datum arg, Oid relid)
{
	ListCell   *lc;

	if (!OidIsValid(relid) || relid == keys_catalog_relid)
		keys_valid = false;
	if (!OidIsValid(relid) || relid == cached_catalog_relid)
	{
		rows_valid = false;
		return;
	}
	foreach(lc, cached_rows)
	{
		ContinuousViewRow *row = lfirst(lc);

		if (row->view == relid || row->stream == relid || row->output == relid)
			rows_valid = false;
	}
}

static char *
text_column(HeapTuple tuple, TupleDesc desc, int col)
{
	char	   *s = SPI_getvalue(tuple, desc, col);

	return s ? MemoryContextStrdup(rows_cxt, s) : NULL;
}

static Oid
oid_column(HeapTuple tuple, TupleDesc desc, int col)
{
	bool		isnull;

	return DatumGetObjectId(SPI_getbinval(tuple, desc, col, &isnull));
}

/* One result row of load_rows()' query, in rows_cxt */
static ContinuousViewRow *
row_from_tuple(HeapTuple tuple, TupleDesc desc)
{
	ContinuousViewRow *row = MemoryContextAllocZero(rows_cxt, sizeof(ContinuousViewRow));
	WindowSpecText *w = &row->window;
	bool		isnull;

	row->id = DatumGetInt32(SPI_getbinval(tuple, desc, 1, &isnull));
	row->view = oid_column(tuple, desc, 2);
	row->stream = oid_column(tuple, desc, 3);
	row->state_table = oid_column(tuple, desc, 4);
	row->delta_table = oid_column(tuple, desc, 5);
	row->owner = oid_column(tuple, desc, 6);
	row->name = text_column(tuple, desc, 7);
	row->definition = text_column(tuple, desc, 8);
	row->query = text_column(tuple, desc, 9);
	row->key_count = DatumGetInt32(SPI_getbinval(tuple, desc, 10, &isnull));
	w->kind = text_column(tuple, desc, 11);
	w->time_column = text_column(tuple, desc, 12);
	w->size = text_column(tuple, desc, 13);
	w->step = text_column(tuple, desc, 14);
	w->ttl = text_column(tuple, desc, 15);
	w->ttl_column = text_column(tuple, desc, 16);
	w->lateness = text_column(tuple, desc, 17);
	w->keep_late = text_column(tuple, desc, 18);
	row->keeps_rows = DatumGetBool(SPI_getbinval(tuple, desc, 19, &isnull));
	row->output = oid_column(tuple, desc, 20);
	row->notify = text_column(tuple, desc, 21);
	return row;
}

/* Have invalidate_rows called at relcache invalidations, once per process */
static void
register_invalidation(void)
{
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(invalidate_rows, (Datum) 0);
		callback_registered = true;
	}
}

/*
 * Connect SPI and run sql (a query of the catalog) as committed now, not in
 * the caller's snapshot: the invalidation that brought a load here may come
 * from a DDL that committed after that snapshot was taken (a lock taken
 * since processed it), and a load that missed that DDL would be kept until
 * the next one.  The caller reads SPI_tuptable and calls SPI_finish().
 */
static void
read_catalog_now(const char *sql)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetLatestSnapshot());
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the continuous view catalog");
	PopActiveSnapshot();
}

/*
 * Run load, which sets *valid first (so that invalidations arriving while
 * it loads make the next call load again); an error leaves the cache stale.
 */
static void
load_or_stay_stale(void (*load) (void), bool *valid)
{
	PG_TRY();
	{
		load();
	}
	PG_CATCH();
	{
		*valid = false;
		PG_RE_THROW();
	}
	PG_END_TRY();
}

static void
load_rows(void)
{
	MemoryContext old;

	if (rows_cxt == NULL)
		rows_cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext catalog rows",
										 ALLOCSET_SMALL_SIZES);
	register_invalidation();
	MemoryContextReset(rows_cxt);
	cached_rows = NIL;
	rows_search_path = MemoryContextStrdup(rows_cxt, namespace_search_path);
	/* invalidations that arrive while loading make the next call load again */
	rows_valid = true;
	cached_catalog_relid = stream_catalog_relid(false);

	read_catalog_now("SELECT v.id, v.view::oid, v.stream::oid, v.state_table::oid, "
					 "v.delta_table::oid, c.relowner, v.view::text, v.definition, v.query, "
					 "v.key_count, " WINDOW_TEXT_COLUMNS ", "
					 "v.key_count OPERATOR(pg_catalog.=) 0 AND "
					 "pg_catalog.cardinality(v.aggregates) OPERATOR(pg_catalog.=) 0, v.output::oid, v.notify "
					 "FROM " STREAM_CATALOG_ROWS " v "
					 "JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) v.view::oid ORDER BY v.id");
	old = MemoryContextSwitchTo(rows_cxt);
	for (uint64 i = 0; i < SPI_processed; i++)
		cached_rows = lappend(cached_rows, row_from_tuple(SPI_tuptable->vals[i],
														  SPI_tuptable->tupdesc));
	MemoryContextSwitchTo(old);
	SPI_finish();
}

/*
 * Every continuous view of the database, ordered by id.  The list and its
 * rows stay valid until the next call; a caller that keeps them longer
 * copies what it needs.  Needs a transaction with an active snapshot.
 */
List *
stream_catalog_views(void)
{
	if (!rows_valid || strcmp(rows_search_path, namespace_search_path) != 0)
		load_or_stay_stale(load_rows, &rows_valid);
	return cached_rows;
}

static void
load_delta_keys(void)
{
	DeltaKeys  *keys;

	register_invalidation();
	/* invalidations that arrive while loading make the next call load again */
	keys_valid = true;
	keys_catalog_relid = stream_catalog_relid(false);
	read_catalog_now("SELECT v.delta_table::oid, v.view::oid, v.key_count FROM "
					 STREAM_CATALOG_ROWS " v");
	keys = MemoryContextAlloc(TopMemoryContext, sizeof(DeltaKeys) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		keys[i].delta = oid_column(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		keys[i].view = oid_column(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		keys[i].key_count = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
														SPI_tuptable->tupdesc, 3, &isnull));
	}
	if (delta_keys != NULL)
		pfree(delta_keys);
	delta_keys = keys;
	ndelta_keys = SPI_processed;
	SPI_finish();
}

/*
 * The key count of the view whose delta table is delta (0 for a view that
 * keeps rows), and that view in *view; -1 when delta is no delta table.
 * Needs a transaction, and outside parallel mode (a reload reads the
 * catalog).
 */
int
stream_catalog_delta_keys(Oid delta, Oid *view)
{
	if (!keys_valid)
		load_or_stay_stale(load_delta_keys, &keys_valid);
	for (int i = 0; i < ndelta_keys; i++)
		if (delta_keys[i].delta == delta)
		{
			*view = delta_keys[i].view;
			return delta_keys[i].key_count;
		}
	return -1;
}

/*
 * stream_catalog_delta_keys in any process: in parallel mode too (a worker
 * of a parallel read, where the cache cannot be loaded: that takes a new
 * snapshot), where the catalog table is read in the query's snapshot
 * instead: a delta table belongs to one view all its life, so a snapshot
 * that sees the table sees the view's row.
 */
int
stream_catalog_delta_keys_anywhere(Oid delta, Oid *view)
{
	int			key_count = -1;
	Oid			catalog;
	Relation	rel;
	AttrNumber	delta_att;
	AttrNumber	view_att;
	AttrNumber	keys_att;
	TableScanDesc scan;
	TupleTableSlot *slot;

	if (!IsInParallelMode())
		return stream_catalog_delta_keys(delta, view);
	*view = InvalidOid;
	catalog = stream_catalog_relid(true);
	if (!OidIsValid(catalog))
		return -1;
	rel = table_open(catalog, AccessShareLock);
	delta_att = get_attnum(catalog, "delta_table");
	view_att = get_attnum(catalog, "view");
	keys_att = get_attnum(catalog, "key_count");
	scan = table_beginscan(rel, ActiveSnapshotSet() ? GetActiveSnapshot() :
						   GetTransactionSnapshot(), 0, NULL);
	slot = table_slot_create(rel, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		value = slot_getattr(slot, delta_att, &isnull);

		if (!isnull && DatumGetObjectId(value) == delta)
		{
			*view = DatumGetObjectId(slot_getattr(slot, view_att, &isnull));
			key_count = DatumGetInt32(slot_getattr(slot, keys_att, &isnull));
			break;
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return key_count;
}

/* The row of view id (see stream_catalog_views), or NULL */
ContinuousViewRow *
stream_catalog_view(int id)
{
	ListCell   *lc;

	foreach(lc, stream_catalog_views())
		if (((ContinuousViewRow *) lfirst(lc))->id == id)
			return lfirst(lc);
	return NULL;
}

/*
 * A new continuous view id.  The caller runs as the extension's owner
 * (the sequence is not usable by others) with SPI connected.
 */
int
stream_catalog_next_view_id(void)
{
	bool		isnull;

	if (SPI_execute("SELECT pg_catalog.nextval('" STREAM_INTERNAL_SCHEMA ".continuous_views_id_seq')",
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not allocate a continuous view id");
	return (int) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Record a new continuous view: row's identity, relations, texts, key count
 * and window, and the aggregate (an Oid) of each state column.  The caller
 * runs as the extension's owner with SPI connected, and calls
 * stream_catalog_changed() once the view is complete.
 */
void
stream_catalog_insert_view(ContinuousViewRow *row, List *aggregates)
{
	Oid			argtypes[19] = {INT4OID, OIDOID, OIDOID, OIDOID, OIDOID, TEXTOID, TEXTOID,
		INT4OID, REGPROCEDUREARRAYOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, TEXTOID, OIDOID, TEXTOID};
	WindowSpecText *w = &row->window;
	char	   *time_attnum = NULL;
	char	   *wtext[8];
	Datum		values[19];
	char		nulls[19];
	int			naggs = list_length(aggregates);
	Datum	   *aggoids = palloc(sizeof(Datum) * Max(naggs, 1));
	ListCell   *lc;

	foreach(lc, aggregates)
		aggoids[foreach_current_index(lc)] = ObjectIdGetDatum(lfirst_oid(lc));

	/* the time column by number, so that renaming it changes nothing */
	if (w->time_column != NULL)
		time_attnum = psprintf("%d", (int) get_attnum(row->stream, w->time_column));
	wtext[0] = w->kind;
	wtext[1] = time_attnum;
	wtext[2] = w->size;
	wtext[3] = w->step;
	wtext[4] = w->ttl;
	wtext[5] = w->ttl_column;
	wtext[6] = w->lateness;
	wtext[7] = w->keep_late;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int32GetDatum(row->id);
	values[1] = ObjectIdGetDatum(row->view);
	values[2] = ObjectIdGetDatum(row->stream);
	values[3] = ObjectIdGetDatum(row->state_table);
	values[4] = ObjectIdGetDatum(row->delta_table);
	values[5] = CStringGetTextDatum(row->definition);
	values[6] = CStringGetTextDatum(row->query);
	values[7] = Int32GetDatum(row->key_count);
	values[8] = PointerGetDatum(construct_array(aggoids, naggs, REGPROCEDUREOID,
												sizeof(Oid), true, TYPALIGN_INT));
	for (int i = 0; i < 8; i++)
	{
		values[9 + i] = wtext[i] ? CStringGetTextDatum(wtext[i]) : (Datum) 0;
		nulls[9 + i] = wtext[i] ? ' ' : 'n';
	}
	values[17] = ObjectIdGetDatum(row->output);
	nulls[17] = OidIsValid(row->output) ? ' ' : 'n';
	values[18] = row->notify ? CStringGetTextDatum(row->notify) : (Datum) 0;
	nulls[18] = row->notify ? ' ' : 'n';
	if (SPI_execute_with_args("INSERT INTO " STREAM_INTERNAL_SCHEMA ".continuous_views "
							  "(id, view, stream, state_table, delta_table, definition, "
							  "query, key_count, aggregates, window_kind, time_attnum, "
							  "window_size, window_step, ttl, ttl_column, allowed_lateness, keep_late, output, notify) "
							  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::pg_catalog.int2, "
							  "$12::pg_catalog.interval, $13::pg_catalog.interval, "
							  "$14::pg_catalog.interval, $15, $16::pg_catalog.interval, "
							  "$17::pg_catalog.bool, $18::pg_catalog.regclass, $19)",
							  19, argtypes, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record continuous view %d", row->id);
}

/*
 * The columns of view id's state table in order, each with the aggregate
 * whose state it holds (NULL for keys) and the result table's column
 * keeping its result, for the combiner's statements.
 * Allocated in the current memory context; SPI connected by the caller.
 */
List *
stream_catalog_state_columns(int id)
{
	List	   *columns = NIL;
	MemoryContext cxt = CurrentMemoryContext;
	Oid			result = stream_view_relation_relid(id, VIEW_RESULT_TABLE, true);

	/* a result table has the keys, then a result per state */
	/* (in any session: its operators are pg_catalog's, whatever the search_path) */
	if (SPI_execute(psprintf("SELECT a.attname, v.aggregates[a.attnum::pg_catalog.int4 OPERATOR(pg_catalog.-) v.key_count]::oid, "
							 "pg_catalog.format_type(a.atttypid, a.atttypmod), "
							 "a.attnum::pg_catalog.int4 OPERATOR(pg_catalog.<=) v.key_count, "
							 "r.attname, pg_catalog.format_type(r.atttypid, r.atttypmod), "
							 "(SELECT pg_catalog.format('%%I.%%I', n.nspname, c.collname) "
							 "FROM pg_catalog.pg_collation c JOIN pg_catalog.pg_namespace n "
							 "ON n.oid OPERATOR(pg_catalog.=) c.collnamespace "
							 "WHERE c.oid OPERATOR(pg_catalog.=) a.attcollation), a.atttypid "
							 "FROM " STREAM_CATALOG_ROWS " v "
							 "JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) v.state_table::oid "
							 "LEFT JOIN pg_catalog.pg_attribute r ON r.attrelid OPERATOR(pg_catalog.=) '%u'::pg_catalog.oid "
							 "AND a.attnum::pg_catalog.int4 OPERATOR(pg_catalog.>) v.key_count "
							 "AND r.attnum OPERATOR(pg_catalog.=) a.attnum "
							 "WHERE v.id OPERATOR(pg_catalog.=) %d AND a.attnum OPERATOR(pg_catalog.>) 0 "
							 "AND NOT a.attisdropped AND a.attgenerated OPERATOR(pg_catalog.=) ''::pg_catalog.\"char\" "
							 "AND a.attname OPERATOR(pg_catalog.<>) '_one'::pg_catalog.name ORDER BY a.attnum",
							 result, id),
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the columns of continuous view %d", id);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(cxt);
		StateColumn *col = palloc0(sizeof(StateColumn));
		bool		isnull;
		bool		is_key = DatumGetBool(SPI_getbinval(tuple, desc, 4, &isnull));
		char	   *result_name = SPI_getvalue(tuple, desc, 5);
		char	   *aggregate = SPI_getvalue(tuple, desc, 2);

		col->name = pstrdup(quote_identifier(SPI_getvalue(tuple, desc, 1)));
		col->type = pstrdup(SPI_getvalue(tuple, desc, 3));
		/* NULL for keys, and for the columns of a view that keeps rows */
		col->aggregate = (is_key || aggregate == NULL) ? NULL : pstrdup(aggregate);
		col->result = result_name ? pstrdup(quote_identifier(result_name)) : NULL;
		col->result_type = result_name ? pstrdup(SPI_getvalue(tuple, desc, 6)) : NULL;
		col->collation = SPI_getvalue(tuple, desc, 7);
		if (col->collation != NULL)
			col->collation = pstrdup(col->collation);
		if (is_key)
			col->null_test = stream_key_null_sql(psprintf("t.%s", col->name),
												 DatumGetObjectId(SPI_getbinval(tuple, desc, 8, &isnull)));
		columns = lappend(columns, col);
		MemoryContextSwitchTo(old);
	}
	return columns;
}

/*
 * The change streams of the database (ChangeStream *, in cxt), SPI
 * connected, read as a role that may read the extension's tables.
 */
List *
stream_catalog_change_streams(MemoryContext cxt)
{
	List	   *streams = NIL;

	if (SPI_execute("SELECT c.view_id, c.stream FROM " STREAM_CHANGE_STREAMS_TABLE " c "
					"JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) c.stream "
					"ORDER BY c.view_id", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read " STREAM_CHANGE_STREAMS_TABLE);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		ChangeStream *c = palloc(sizeof(ChangeStream));
		bool		isnull;

		c->view_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		c->stream = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		streams = lappend(streams, c);
		MemoryContextSwitchTo(old);
	}
	return streams;
}
