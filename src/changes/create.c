/*
 * create.c
 *	  stream_ext.create_change_stream(view, name): a stream of the changes
 *	  of a continuous view.
 *
 * The stream is an ordinary stream (a foreign table of the server
 * stream_ext) owned by the caller, with the columns old and new, both of
 * the view's row type, and final; its events come from the combiner
 * (change_sql.c).  The view gets its changed_<id> and emitted_<id> tables,
 * made by the extension's owner and handed to the view's owner like its
 * other tables, and emitted_<id> starts as the view's rows now: the first
 * change of a row carries its row of now as old.  The state table is
 * locked against merges until the creation commits, so that no merge goes
 * unnoted between that read and the combiner's first merge that notes.
 * Dropping the stream drops both tables (they depend on it); dropping the
 * view needs CASCADE, which drops the stream (it depends on the view) and
 * so its tables and the views that read it.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"

#include "changes/changes.h"
#include "guc.h"
#include "ddl/create_view.h"
#include "stream/fdw.h"
#include "window/lateness.h"

PG_FUNCTION_INFO_V1(stream_ext_create_change_stream);

static void
spi_exec(const char *sql, int expected)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc != expected)
		elog(ERROR, "SPI_execute failed (%d): %s", rc, sql);
}

/*
 * The stream's changed_<id> and emitted_<id> depend on it: DROP drops them.
 * The stream depends on the view: DROP VIEW ... CASCADE drops it (and so
 * its tables and views) rather than only its columns of the view's type.
 */
static void
record_table_dependencies(int id, Oid view, Oid stream)
{
	ObjectAddress referenced;
	ObjectAddress depender;

	ObjectAddressSet(depender, RelationRelationId, stream);
	ObjectAddressSet(referenced, RelationRelationId, view);
	recordDependencyOn(&depender, &referenced, DEPENDENCY_NORMAL);

	ObjectAddressSet(referenced, RelationRelationId, stream);
	for (int which = VIEW_CHANGED_GROUPS; which <= VIEW_EMITTED_ROWS; which++)
	{
		ObjectAddress table;

		ObjectAddressSet(table, RelationRelationId,
						 stream_view_relation_relid(id, (ViewRelation) which, false));
		recordDependencyOn(&table, &referenced, DEPENDENCY_AUTO);
	}
}

/*
 * Groups are named by the text of their keys (key_identity.c): text under a
 * nondeterministic collation has equal values that print differently, and
 * no form that stands for them all.
 */
static void
refuse_nondeterministic_keys(List *keys, const char *view_name)
{
	ListCell   *lc;

	foreach(lc, keys)
	{
		StateColumn *c = lfirst(lc);

		if (c->collation != NULL &&
			!get_collation_isdeterministic(get_collation_oid(stringToQualifiedNameList(c->collation),
															 false)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("continuous view \"%s\" groups by %s under a nondeterministic collation",
							view_name, c->name),
					 errdetail("A change stream tells groups apart by the text of their keys."),
					 errhint("Group by the key with a deterministic collation, or by a normalized form of it (lower(...)).")));
	}
}

Datum
stream_ext_create_change_stream(PG_FUNCTION_ARGS)
{
	Oid			view = PG_GETARG_OID(0);
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int			id = stream_owned_continuous_view_id(view);
	ContinuousViewRow *row = stream_catalog_view(id);
	RangeVar   *rv = makeRangeVarFromNameList(stringToQualifiedNameList(name));
	char	   *type = format_type_be_qualified(get_rel_type_id(view));
	char	   *qualified;
	Oid			stream;
	StreamRunAs as;
	int			path_level;
	char	   *watermark;
	List	   *keys;
	char	   *key_columns;
	EmitSql    *sql;

	stream_require_preload();
	if (row->keeps_rows)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous view \"%s\" keeps rows; it has no changes to stream",
						get_rel_name(view)),
				 errhint("Its rows are events already: a transform into a stream "
						 "(WITH (continuous, output = 'stream')) hands them on.")));
	if (OidIsValid(stream_view_relation_relid(id, VIEW_EMITTED_ROWS, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("continuous view \"%s\" has a change stream already", get_rel_name(view)),
				 errhint("Read that stream from several views, or drop it first.")));

	/*
	 * No merge until this commits: a merge in between would go unnoted.  The
	 * view is then read as merged when the lock came, which a transaction
	 * snapshot taken before may not show (a change merged meanwhile would
	 * never be emitted).
	 */
	stream_refuse_xact_snapshot("stream_ext.create_change_stream");
	LockRelationOid(row->state_table, ShareLock);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* the stream is the caller's, made as CREATE FOREIGN TABLE makes it */
	qualified = quote_qualified_identifier(get_namespace_name(RangeVarGetCreationNamespace(rv)),
										   rv->relname);
	if (OidIsValid(RangeVarGetRelid(rv, NoLock, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists", rv->relname)));
	spi_exec(psprintf("CREATE FOREIGN TABLE %s (old %s, new %s, final boolean) SERVER stream_ext "
					  "OPTIONS (" STREAM_CHANGES_OF_OPTION " %s)",
					  qualified, type, type, quote_literal_cstr(row->name)),
			 SPI_OK_UTILITY);
	CommandCounterIncrement();
	stream = RangeVarGetRelid(rv, NoLock, false);

	/*
	 * Its tables are the extension's to make, and the view owner's to have;
	 * names resolve as the extension's (the superuser's SQL must not find
	 * the caller's operators or types first).
	 */
	path_level = stream_pin_internal_search_path();
	stream_begin_as_extension(&as);
	keys = stream_changes_own_keys(row);
	refuse_nondeterministic_keys(keys, get_rel_name(view));
	key_columns = stream_changes_key_columns_sql(keys);
	spi_exec(psprintf("CREATE TABLE %s (_gid text COLLATE \"C\" PRIMARY KEY%s)",
					  stream_view_relation_sql(id, VIEW_CHANGED_GROUPS), key_columns),
			 SPI_OK_UTILITY);
	spi_exec(psprintf("CREATE TABLE %s (_rid text COLLATE \"C\" PRIMARY KEY, "
					  "_gid text COLLATE \"C\" NOT NULL, last %s, _final_at timestamptz%s)",
					  stream_view_relation_sql(id, VIEW_EMITTED_ROWS), type, key_columns),
			 SPI_OK_UTILITY);
	spi_exec(psprintf("CREATE INDEX ON %s (_gid)", stream_view_relation_sql(id, VIEW_EMITTED_ROWS)),
			 SPI_OK_UTILITY);
	spi_exec(psprintf("CREATE INDEX ON %s (_final_at) WHERE _final_at IS NOT NULL",
					  stream_view_relation_sql(id, VIEW_EMITTED_ROWS)),
			 SPI_OK_UTILITY);
	CommandCounterIncrement();
	stream_hand_over_view_relations(id, row->owner);
	spi_exec(psprintf("INSERT INTO " STREAM_CHANGE_STREAMS_TABLE " (view_id, stream) "
					  "VALUES (%d, %u)", id, stream),
			 SPI_OK_INSERT);
	record_table_dependencies(id, view, stream);
	stream_end_as_extension(&as);
	CommandCounterIncrement();

	/*
	 * The view's rows now, as the owner reads them; those final already are
	 * forgotten at once (their events are not sent: the stream is new).
	 */
	(void) stream_changes_pin_text();
	watermark = stream_lateness_watermark_literal(id);
	stream_begin_as_owner(&as, row->owner);
	sql = stream_changes_emit_sql(row, keys, NULL, watermark);
	if (SPI_execute(sql->diff, false, 0) != SPI_OK_SELECT ||
		(sql->close != NULL && SPI_execute(sql->close, false, 0) != SPI_OK_SELECT))
		elog(ERROR, "could not read the rows of continuous view %d", id);
	stream_end_as_owner(&as);
	AtEOXact_GUC(false, path_level);

	SPI_finish();
	PG_RETURN_OID(stream);
}
