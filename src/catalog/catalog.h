/*
 * catalog.h
 *	  The extension's catalog: the names of its internal relations, lookups
 *	  of a continuous view by relation, and one reader and writer of the
 *	  rows of stream_ext_internal.continuous_views.
 *
 * Nothing outside this module spells "state_<id>", "delta_<id>" or the
 * columns of the catalog table.
 */
#ifndef STREAM_EXT_CATALOG_H
#define STREAM_EXT_CATALOG_H

#include "executor/spi.h"
#include "nodes/pg_list.h"

/* The schema of the extension's catalog tables and per-view relations */
#define STREAM_INTERNAL_SCHEMA "stream_ext_internal"

/*
 * Transforms into streams chain at most this many deep (refused at CREATE;
 * a batch's worker applies a whole chain; cycles are refused too)
 */
#define STREAM_MAX_TRANSFORM_DEPTH 32

/*
 * The catalog rows as every role reads them: the table is its owner's only
 * (it is not listed as readable), this SECURITY DEFINER function returns it.
 */
#define STREAM_CATALOG_ROWS STREAM_INTERNAL_SCHEMA ".catalog_rows()"

/* A continuous view's relations: combine states, and the workers' deltas */
typedef enum ViewRelation
{
	VIEW_STATE_TABLE,
	VIEW_DELTA_TABLE,
	VIEW_RESULT_TABLE,			/* views that keep their results: one row per
								 * group, its keys and results */
	VIEW_CHANGED_GROUPS,		/* views with a change stream: the groups
								 * merged since their changes were emitted */
	VIEW_EMITTED_ROWS			/* ... and each row as its last change
								 * event gave it (src/changes/) */
} ViewRelation;

#define VIEW_LAST_RELATION VIEW_EMITTED_ROWS

/*
 * The window of a view as the catalog stores it: each field's text, NULL
 * when unset (window/spec.c turns it into a WindowSpec and back).
 */
typedef struct WindowSpecText
{
	char	   *kind;
	char	   *time_column;
	char	   *size;
	char	   *step;
	char	   *ttl;
	char	   *ttl_column;
	char	   *lateness;
	char	   *keep_late;
} WindowSpecText;

/* One row of stream_ext_internal.continuous_views, as the extension uses it. */
typedef struct ContinuousViewRow
{
	int			id;
	Oid			view;
	Oid			stream;
	Oid			state_table;
	Oid			delta_table;
	Oid			owner;			/* the view's owner, from pg_class */
	char	   *name;			/* the view, as regclass text */
	char	   *definition;		/* the SELECT as the user wrote it */
	char	   *query;			/* its analyzed Query tree (nodeToString) */
	int			key_count;		/* leading key columns of the state table */
	WindowSpecText window;
	bool		keeps_rows;		/* the view keeps its query's rows: it has
								 * neither keys nor aggregates, and its state
								 * table holds the rows */
	Oid			output;			/* a transform's target table or stream, or
								 * InvalidOid (src/ddl/transform.c) */
	char	   *notify;			/* the channel its rows are notified on, or
								 * NULL (window/merge_sql.c) */
} ContinuousViewRow;

/* A column of a view's state table, for the combiner's statements. */
typedef struct StateColumn
{
	char	   *name;			/* quoted */
	char	   *type;			/* format_type of the column */
	char	   *aggregate;		/* OID (as text) of the aggregate whose
								 * state the column holds; NULL for keys */
	char	   *result;			/* the column of the view's result table
								 * keeping the aggregate's result (quoted),
								 * or NULL */
	char	   *result_type;	/* its format_type */
	char	   *collation;		/* the column's collation, qualified and
								 * quoted, or NULL */
	char	   *null_test;		/* SQL testing a key column of alias t for
								 * NULL (stream_key_null_sql); NULL for
								 * other columns */
} StateColumn;

/* names */
extern char *stream_view_relation_name(int id, ViewRelation which);
extern char *stream_view_relation_sql(int id, ViewRelation which);
extern bool stream_is_internal_relation(Oid relid);
extern bool stream_is_view_relation(Oid relid, ViewRelation which);
extern bool stream_is_reserved_internal_name(const char *name);
extern int	stream_kafka_sink_id(Oid relid);
extern bool stream_lock_if_free(Oid relid, LOCKMODE mode);
extern char *stream_key_null_sql(const char *expr, Oid type);
extern char *stream_key_identity_sql(const char *expr);
extern Oid	stream_view_relation_relid(int id, ViewRelation which, bool missing_ok);
extern Oid	stream_internal_relid(const char *name, bool missing_ok);
extern Oid	stream_catalog_relid(bool missing_ok);
extern Oid	stream_writer_xact_typid(void);

/* lookups by relation */
extern int	stream_continuous_view_id(Oid relid);
extern int	stream_owned_continuous_view_id(Oid view);

/* rows */
/* The catalog table of change streams: (view_id, stream) */
#define STREAM_CHANGE_STREAMS_TABLE STREAM_INTERNAL_SCHEMA ".change_streams"

/* A view's change stream */
typedef struct ChangeStream
{
	int			view_id;
	Oid			stream;
} ChangeStream;

extern List *stream_catalog_change_streams(MemoryContext cxt);
extern List *stream_catalog_views(void);
extern ContinuousViewRow *stream_catalog_view(int id);
extern int	stream_catalog_delta_keys(Oid delta, Oid *view);
extern int	stream_catalog_delta_keys_anywhere(Oid delta, Oid *view);
extern int	stream_catalog_next_view_id(void);
extern void stream_catalog_insert_view(ContinuousViewRow *row, List *aggregates);
extern List *stream_catalog_state_columns(int id);
extern void stream_catalog_changed(void);
/* rows whose writer ended (writer_rows.c) */
extern void stream_settle_writer_rows(const char *table, const char *rows, const char *committed,
									  Datum *arg, uint64 *deleted, uint64 *settled);

/* statements on the extension's tables kept for the life of the process */
extern SPIPlanPtr stream_prepare_kept_plan(const char *sql, int nargs, Oid *argtypes);
/* the same, always run with its generic plan (never planned again per call) */
extern SPIPlanPtr stream_prepare_kept_generic_plan(const char *sql, int nargs, Oid *argtypes);

#endif							/* STREAM_EXT_CATALOG_H */
