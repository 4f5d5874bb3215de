/*
 * restore.c
 *	  Continuous views across pg_dump and pg_restore.
 *
 * pg_dump writes out a database's streams, continuous views, state and
 * delta tables as the ordinary relations they are, and the rows of the
 * extension's catalog tables (install script: pg_extension_config_dump).
 * Three things in those rows only mean something in the database that wrote
 * them:
 *	 - continuous_views.query, the view's Query tree, names OIDs;
 *	 - continuous_views.time_attnum numbers a stream column, and a restored
 *	   stream has lost its dropped columns;
 *	 - the writer transactions of delta rows (agg/writer_xact.c handles
 *	   those: their text form is their visibility in pg_dump's snapshot).
 * Nor does the restore record the dependencies of a view's rule on its
 * stream and functions.  So every catalog row carries made_in, the origin
 * it was written in (catalog_origin(): the cluster's system identifier, the
 * database's OID and the extension's, new at every CREATE EXTENSION), and
 * the catalog keeps
 * the defining query as text that means the same under any search_path.  A
 * row inserted with another origin, as pg_restore inserts them, is adopted
 * by the trigger adopt_restored_view: its query is analyzed again (with the
 * restoring role's rights: the owner's grants come after the data), from
 * that text (pg_restore has created the stream, the functions and the view
 * before it loads table data), its time column found
 * again by name, its dependencies recorded; once the restore commits, the
 * database's workers start, and their combiner merges the restored deltas.
 * Kafka consumers are adopted stopped (install script).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "parser/parser.h"
#include "parser/parsetree.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "guc.h"
#include "analyze/view_query.h"
#include "catalog/catalog.h"
#include "ddl/create_view.h"
#include "ddl/restore.h"
#include "ddl/transform.h"
#include "ipc/queue.h"
#include "window/spec.h"

PG_FUNCTION_INFO_V1(stream_ext_catalog_origin);
PG_FUNCTION_INFO_V1(stream_ext_adopt_restored_view);

/* Run with search_path empty: every name resolved or printed qualified. */
static int
enter_empty_search_path(void)
{
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", "", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

static void
set_for_portable_text(const char *name, const char *value)
{
	(void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/*
 * A query as SQL text that means the same under any search_path and any
 * session's settings: constants printed as pg_dump prints them (ISO dates,
 * postgres intervals, floats exactly), which any DateStyle and
 * IntervalStyle read back the same.
 */
char *
stream_portable_query_text(Query *query)
{
	int			nestlevel = enter_empty_search_path();
	char	   *text;

	set_for_portable_text("datestyle", "ISO");
	set_for_portable_text("intervalstyle", "postgres");
	set_for_portable_text("extra_float_digits", "3");
	/* string constants with a backslash printed as any session reads them */
	set_for_portable_text("standard_conforming_strings", "on");
	text = pg_get_querydef(query, false);

	AtEOXact_GUC(false, nestlevel);
	return text;
}

/*
 * "<system identifier>/<database OID>/<extension OID>": where catalog rows
 * are written.  (Databases made from one template that has the extension
 * share its OID: the database tells a restore into one of them.)
 */
static char *
catalog_origin(void)
{
	return psprintf(UINT64_FORMAT "/%u/%u", GetSystemIdentifier(), MyDatabaseId,
					get_extension_oid("stream_ext", false));
}

/* stream_ext_internal.catalog_origin() */
Datum
stream_ext_catalog_origin(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(catalog_origin()));
}

static bool launch_at_commit = false;
static bool launch_callback_registered = false;

/*
 * At commit of a restore: start the database's workers, whose combiner
 * merges the restored deltas and expires rows (else they would wait for the
 * first event).
 */
static void
launch_workers_at_commit(XactEvent event, void *arg)
{
	if (!launch_at_commit)
		return;
	if (event == XACT_EVENT_COMMIT)
		stream_request_launch(MyDatabaseId);
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
		launch_at_commit = false;
}

static void
launch_workers_when_committed(void)
{
	/* (without the library preloaded there are none: the next start has) */
	if (!stream_ext_preloaded)
		return;
	if (!launch_callback_registered)
	{
		RegisterXactCallback(launch_workers_at_commit, NULL);
		launch_callback_registered = true;
	}
	launch_at_commit = true;
}

/* A column of the catalog row, by name; NULL when the value is NULL */
static Datum
column(HeapTuple tuple, TupleDesc desc, const char *name, bool *isnull)
{
	int			attnum = SPI_fnumber(desc, name);

	if (attnum <= 0)
		elog(ERROR, "catalog table has no column \"%s\"", name);
	return heap_getattr(tuple, attnum, desc, isnull);
}

static char *
text_column(HeapTuple tuple, TupleDesc desc, const char *name)
{
	bool		isnull;
	Datum		value = column(tuple, desc, name, &isnull);

	if (isnull)
		return NULL;
	return TextDatumGetCString(value);
}

/* The output text of a column (intervals, booleans), or NULL */
static char *
column_text(HeapTuple tuple, TupleDesc desc, const char *name)
{
	return SPI_getvalue(tuple, desc, SPI_fnumber(desc, name));
}

static void
restore_error(const char *view, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("cannot restore continuous view \"%s\"", view),
			 errdetail_internal("%s", detail),
			 errhint("Restore the whole dump, with its streams and functions, into a database with stream_ext.")));
}

/* Error context while a view's definition is analyzed again */
static void
restoring_view_context(void *arg)
{
	errcontext("restoring continuous view \"%s\"", (const char *) arg);
}

/*
 * The name of the stream column that time_attnum numbered where the row was
 * written: the stored Query tree still has that stream's column names (with
 * "" for dropped columns) in the entry that the new tree has at stream_rti.
 */
static char *
written_time_column(const char *view, Query *written, Index stream_rti, int attnum)
{
	RangeTblEntry *rte;
	char	   *name;

	if (stream_rti > list_length(written->rtable))
		restore_error(view, "Its stored query does not match its definition.");
	rte = rt_fetch(stream_rti, written->rtable);
	if (rte->rtekind != RTE_RELATION || attnum < 1 || attnum > list_length(rte->eref->colnames))
		restore_error(view, "Its stored query does not match its definition.");
	name = strVal(list_nth(rte->eref->colnames, attnum - 1));
	if (name[0] == '\0')
		restore_error(view, "Its time column was dropped.");
	return name;
}

/* Do the view's aggregates, as analyzed here, match the stored ones? */
static bool
same_aggregates(ViewShape *shape, Datum stored)
{
	ArrayType  *array = DatumGetArrayTypeP(stored);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	ListCell   *lc;

	deconstruct_array(array, REGPROCEDUREOID, sizeof(Oid), true, TYPALIGN_INT,
					  &elems, &nulls, &n);
	if (n != list_length(shape->aggs))
		return false;
	foreach(lc, shape->aggs)
		if (nulls[foreach_current_index(lc)] ||
			DatumGetObjectId(elems[foreach_current_index(lc)]) != ((Aggref *) lfirst(lc))->aggfnoid)
			return false;
	return true;
}

/*
 * Trigger adopt_restored_view, BEFORE INSERT on continuous_views for rows
 * written elsewhere: the row with its query analyzed here, its time column
 * numbered here and made_in set; the view's dependencies recorded.
 */
Datum
stream_ext_adopt_restored_view(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	tuple;
	bool		isnull;
	Oid			view;
	Oid			stream;
	Oid			output;
	char	   *view_name;
	char	   *definition;
	Query	   *written;
	Query	   *analyzed;
	Query	   *original;
	List	   *stmts;
	WindowSpecText wtext = {0};
	ViewShape  *shape;
	Datum		time_attnum;
	bool		has_time;
	StreamRunAs as;
	ErrorContextCallback context;
	int			cols[3];
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) || !TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		RelationGetRelid(trigdata->tg_relation) != stream_catalog_relid(false))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("adopt_restored_view() runs only as the trigger on %s.continuous_views",
						STREAM_INTERNAL_SCHEMA)));
	rel = trigdata->tg_relation;
	desc = RelationGetDescr(rel);
	tuple = trigdata->tg_trigtuple;

	view = DatumGetObjectId(column(tuple, desc, "view", &isnull));
	stream = DatumGetObjectId(column(tuple, desc, "stream", &isnull));
	view_name = get_rel_name(view);
	if (view_name == NULL || get_rel_relkind(view) != RELKIND_VIEW)
		elog(ERROR, "continuous view %u does not exist", view);
	definition = text_column(tuple, desc, "definition");
	written = (Query *) stringToNode(text_column(tuple, desc, "query"));
	if (!IsA(written, Query))
		restore_error(view_name, "Its stored query is not a query.");

	/*
	 * The definition again, analyzed with the restoring role's rights (the
	 * extension's catalog is written only by those who may), not the view
	 * owner's: pg_restore grants the owner its rights on schemas and tables
	 * only after the data, and the workers check the owner's rights at every
	 * batch anyway.  Parse analysis runs no user code.
	 */
	stream_begin_as_owner(&as, GetUserId());
	(void) enter_empty_search_path();
	set_for_portable_text("standard_conforming_strings", "on");
	stmts = raw_parser(definition, RAW_PARSE_DEFAULT);
	if (list_length(stmts) != 1)
		restore_error(view_name, "Its definition is not one SELECT.");
	/* (its errors, such as a query refused since it was made, name the view) */
	context.callback = restoring_view_context;
	context.arg = view_name;
	context.previous = error_context_stack;
	error_context_stack = &context;
	analyzed = stream_analyze_select(linitial(stmts), definition);
	error_context_stack = context.previous;
	original = copyObject(analyzed);

	wtext.kind = text_column(tuple, desc, "window_kind");
	time_attnum = column(tuple, desc, "time_attnum", &isnull);
	has_time = !isnull;
	if (has_time)
	{
		Index		rti = 0;
		ListCell   *lc;

		foreach(lc, analyzed->rtable)
			if (((RangeTblEntry *) lfirst(lc))->rtekind == RTE_RELATION &&
				((RangeTblEntry *) lfirst(lc))->relid == stream)
				rti = foreach_current_index(lc) + 1;
		if (rti == 0)
			restore_error(view_name, "Its definition does not read its stream.");
		wtext.time_column = written_time_column(view_name, written, rti, DatumGetInt16(time_attnum));
	}
	wtext.size = column_text(tuple, desc, "window_size");
	wtext.step = column_text(tuple, desc, "window_step");
	wtext.ttl = column_text(tuple, desc, "ttl");
	wtext.ttl_column = text_column(tuple, desc, "ttl_column");
	wtext.lateness = column_text(tuple, desc, "allowed_lateness");
	wtext.keep_late = column_text(tuple, desc, "keep_late");
	shape = stream_view_shape(analyzed, stream_window_spec_from_text(&wtext));
	stream_end_as_owner(&as);

	if (shape->stream != stream)
		restore_error(view_name, "Its definition reads another stream.");
	if (!same_aggregates(shape, column(tuple, desc, "aggregates", &isnull)))
		restore_error(view_name, "Its definition computes other aggregates than its state table holds.");

	stream_record_view_dependencies(view, original, shape);
	output = DatumGetObjectId(column(tuple, desc, "output", &isnull));
	if (!isnull)
		stream_transform_record_dependencies(view, output);

	cols[0] = SPI_fnumber(desc, "query");
	values[0] = CStringGetTextDatum(nodeToString(original));
	cols[1] = SPI_fnumber(desc, "made_in");
	values[1] = CStringGetTextDatum(catalog_origin());
	cols[2] = SPI_fnumber(desc, "time_attnum");
	values[2] = Int16GetDatum(has_time ? get_attnum(stream, wtext.time_column) : 0);
	nulls[2] = !has_time;
	stream_catalog_changed();
	launch_workers_when_committed();
	return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, 3, cols, values, nulls));
}
