/*
 * names.c
 *	  Names of the extension's internal relations, and lookups of a
 *	  continuous view by the relation the user knows.
 *
 * Every continuous view <id> has tables in schema stream_ext_internal:
 * state_<id> (one row per group: keys and combined partial states),
 * delta_<id> (the workers' partial states, tagged with their writer's
 * transaction), for a view that keeps its results, result_<id>, and for a
 * view with a change stream changed_<id> and emitted_<id>.  This file is the
 * only place that spells those names.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "catalog/catalog.h"

PG_FUNCTION_INFO_V1(stream_ext_catalog_changed);

/* The name of each ViewRelation, before "_<id>" */
static const char *const view_relation_prefix[] = {
	[VIEW_STATE_TABLE] = "state",
	[VIEW_DELTA_TABLE] = "delta",
	[VIEW_RESULT_TABLE] = "result",
	[VIEW_CHANGED_GROUPS] = "changed",
	[VIEW_EMITTED_ROWS] = "emitted",
};

/*
 * SQL that is true when the group key expr (of type type) is NULL, the key
 * = cannot match.  "IS NULL" of a composite value is also true of a row
 * whose fields are all NULL, which = matches like any other row: for those
 * types only the NULL value itself is tested.
 */
char *
stream_key_null_sql(const char *expr, Oid type)
{
	if (type_is_rowtype(type))
		return psprintf("%s IS NOT DISTINCT FROM NULL", expr);
	return psprintf("%s IS NULL", expr);
}

/*
 * The group key expr as change streams name its group, in ROW(...)::text
 * (changes/key_identity.c): both where a merge notes a group and where an
 * emission reads the view's rows.
 */
char *
stream_key_identity_sql(const char *expr)
{
	return psprintf(STREAM_INTERNAL_SCHEMA ".key_identity(%s)", expr);
}

/* "state_<id>", "delta_<id>" or "result_<id>" */
char *
stream_view_relation_name(int id, ViewRelation which)
{
	return psprintf("%s_%d", view_relation_prefix[which], id);
}

/*
 * Is name one the extension gives a relation of a view in
 * stream_ext_internal: "<prefix>_<digit>...", its tables and their indexes
 * (and the Kafka sinks' staging views, kafka_sink_<id>)?
 */
bool
stream_is_reserved_internal_name(const char *name)
{
	for (int i = 0; i < lengthof(view_relation_prefix); i++)
	{
		size_t		len = strlen(view_relation_prefix[i]);

		if (strncmp(name, view_relation_prefix[i], len) == 0 && name[len] == '_' &&
			isdigit((unsigned char) name[len + 1]))
			return true;
	}
	return strncmp(name, "kafka_sink_", 11) == 0 && isdigit((unsigned char) name[11]);
}

/*
 * The Kafka producer whose staging view relid is (stream_ext_internal's
 * kafka_sink_<id>), or 0.
 */
int
stream_kafka_sink_id(Oid relid)
{
	char	   *name;
	int			id = 0;

	if (!stream_is_internal_relation(relid))
		return 0;
	name = get_rel_name(relid);
	if (name != NULL && strncmp(name, "kafka_sink_", 11) == 0 &&
		isdigit((unsigned char) name[11]))
		id = atoi(name + 11);
	return id;
}

/*
 * Lock relid in mode only if that is possible at once, and say whether it
 * is locked and still there (dropped while we looked it up: false).  For
 * the background work on a view's tables that must neither wait behind a
 * session's lock nor deadlock with a DROP (combiner.c, window/reaper.c).
 */
bool
stream_lock_if_free(Oid relid, LOCKMODE mode)
{
	return ConditionalLockRelationOid(relid, mode) &&
		SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid));
}

/* Is relid a relation of schema stream_ext_internal? */
bool
stream_is_internal_relation(Oid relid)
{
	Oid			nsp = get_namespace_oid(STREAM_INTERNAL_SCHEMA, true);

	return OidIsValid(nsp) && OidIsValid(relid) && get_rel_namespace(relid) == nsp;
}

/* Is relid a continuous view's relation of kind which (of any view)? */
bool
stream_is_view_relation(Oid relid, ViewRelation which)
{
	const char *prefix = view_relation_prefix[which];
	char	   *name;
	bool		is;

	if (!stream_is_internal_relation(relid))
		return false;
	name = get_rel_name(relid);
	is = (name != NULL && strncmp(name, prefix, strlen(prefix)) == 0 &&
		  name[strlen(prefix)] == '_');
	if (name != NULL)
		pfree(name);
	return is;
}

/* The relation's name qualified and quoted, for generated SQL */
char *
stream_view_relation_sql(int id, ViewRelation which)
{
	return quote_qualified_identifier(STREAM_INTERNAL_SCHEMA,
									  stream_view_relation_name(id, which));
}

/* The OID of one of view id's relations, or InvalidOid when missing_ok */
Oid
stream_view_relation_relid(int id, ViewRelation which, bool missing_ok)
{
	Oid			relid = stream_internal_relid(stream_view_relation_name(id, which), true);

	if (!OidIsValid(relid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s.%s\" does not exist", STREAM_INTERNAL_SCHEMA,
						stream_view_relation_name(id, which))));
	return relid;
}

/* The relation name of schema stream_ext_internal, or InvalidOid. */
Oid
stream_internal_relid(const char *name, bool missing_ok)
{
	Oid			nsp = get_namespace_oid(STREAM_INTERNAL_SCHEMA, missing_ok);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return get_relname_relid(name, nsp);
}

/* stream_ext_internal.continuous_views */
Oid
stream_catalog_relid(bool missing_ok)
{
	return stream_internal_relid("continuous_views", missing_ok);
}

/* stream_ext_internal.writer_xact: the type of delta rows' writer column */
Oid
stream_writer_xact_typid(void)
{
	Oid			nsp = get_namespace_oid(STREAM_INTERNAL_SCHEMA, false);

	return GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
						   CStringGetDatum("writer_xact"), ObjectIdGetDatum(nsp));
}

/* The id of a continuous view, or -1 when relid is not one. */
int
stream_continuous_view_id(Oid relid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	Oid			catalog = stream_catalog_relid(true);
	int			id = -1;

	if (!OidIsValid(catalog) || get_rel_relkind(relid) != RELKIND_VIEW)
		return -1;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT id FROM " STREAM_CATALOG_ROWS " WHERE view::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the continuous view catalog");
	if (SPI_processed == 1)
	{
		bool		isnull;

		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	return id;
}

/*
 * The id of a continuous view the current user owns; errors when view is
 * not a continuous view or belongs to someone else.
 */
int
stream_owned_continuous_view_id(Oid view)
{
	int			id;

	if (get_rel_name(view) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", view)));
	id = stream_continuous_view_id(view);
	if (id < 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a continuous view", get_rel_name(view))));
	if (!pg_class_ownercheck(view, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_VIEW, get_rel_name(view));
	return id;
}

/*
 * Tell every backend (workers, the combiner, sessions) that the set of
 * continuous views changed: their cached rows and plans are reloaded at
 * their next use.  Takes effect when the calling transaction commits.
 */
void
stream_catalog_changed(void)
{
	CacheInvalidateRelcacheByRelid(stream_catalog_relid(false));
}

/* stream_ext_internal.catalog_changed(), called by the sql_drop trigger */
Datum
stream_ext_catalog_changed(PG_FUNCTION_ARGS)
{
	stream_catalog_changed();
	PG_RETURN_VOID();
}

/* Prepare a statement kept for the life of the process; errors if it cannot. */
static SPIPlanPtr
prepare_kept(const char *sql, int nargs, Oid *argtypes, int cursor_options)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);

	if (plan == NULL || SPI_keepplan(plan) != 0)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	return plan;
}

SPIPlanPtr
stream_prepare_kept_plan(const char *sql, int nargs, Oid *argtypes)
{
	return prepare_kept(sql, nargs, argtypes, 0);
}

SPIPlanPtr
stream_prepare_kept_generic_plan(const char *sql, int nargs, Oid *argtypes)
{
	return prepare_kept(sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
}
