/*
 * transform.c
 *	  Continuous transforms: CREATE VIEW ... WITH (continuous, output = 't').
 *
 * A transform is a continuous view without aggregates whose rows go into an
 * existing table or stream, its output, instead of being kept.  This file
 * checks one at CREATE and records what it depends on:
 *	 - the output is a table (plain or partitioned, not temporary) or a
 *	   stream, and the creator may INSERT into it;
 *	 - the query neither aggregates nor has window options (windows belong
 *	   to the views that read the output stream);
 *	 - its columns fit the output's, by position (a stream's
 *	   arrival_timestamp is not one of them): as many, each assignable; the
 *	   query's columns are converted to the output's types and take its
 *	   column names, so that what workers and the combiner write is exactly
 *	   the output's row;
 *	 - a stream output does not feed, directly or through other
 *	   transforms, the stream the transform reads (a cycle);
 *	 - the view depends on the output and each of its columns it fills, so
 *	   DROP, DROP COLUMN and ALTER ... TYPE of them need CASCADE.
 * How rows get there: src/worker/README.md ("Transforms").
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_rewrite.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_coerce.h"
#include "rewrite/rewriteSupport.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/varlena.h"

#include "guc.h"
#include "catalog/catalog.h"
#include "ddl/transform.h"
#include "stream/fdw.h"
#include "stream/insert.h"

/*
 * The relation output (a name as the user wrote it) names, checked to be a
 * table or stream the current user may INSERT into.
 */
Oid
stream_transform_output(const char *output)
{
	List	   *names = stringToQualifiedNameList(output);
	RangeVar   *rv = makeRangeVarFromNameList(names);
	Oid			relid = RangeVarGetRelid(rv, AccessShareLock, false);
	char		relkind = get_rel_relkind(relid);
	AclResult	acl;

	if (!(relkind == RELKIND_RELATION || relkind == RELKIND_PARTITIONED_TABLE ||
		  stream_is_stream_relation(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("output \"%s\" is not a table or a stream", output),
				 errdetail("A transform writes its rows into an existing table or stream.")));
	if (get_rel_persistence(relid) == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("output \"%s\" is a temporary table", output),
				 errdetail("Background workers write a transform's rows; they cannot see a session's temporary tables.")));
	if (stream_is_internal_relation(relid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("output \"%s\" is an internal relation of stream_ext", output)));
	if (relkind == RELKIND_FOREIGN_TABLE && stream_changes_of(relid) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("output \"%s\" is a change stream", output),
				 errdetail("Its events are the changes of continuous view %s.",
						   stream_changes_of(relid))));
	acl = pg_class_aclcheck(relid, GetUserId(), ACL_INSERT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, relkind == RELKIND_FOREIGN_TABLE ? OBJECT_FOREIGN_TABLE : OBJECT_TABLE,
					   get_rel_name(relid));
	return relid;
}

/*
 * Make query's columns the output's: as many, each converted to the output
 * column's type (assignment casts, as INSERT ... SELECT does) and named
 * after it.  Refuses a query that aggregates.
 */
void
stream_transform_fit_columns(Query *query, Oid output)
{
	Relation	rel = table_open(output, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *attnos = stream_output_columns(rel);
	char	   *relname = RelationGetRelationName(rel);
	ListCell   *next = list_head(attnos);
	ListCell   *lc;
	int			ncols = 0;

	if (query->hasAggs || query->groupClause != NIL || query->groupingSets != NIL ||
		query->havingQual != NULL || query->hasWindowFuncs)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a transform cannot aggregate"),
				 errdetail("A continuous view with output writes each row of its query into \"%s\"; aggregates, GROUP BY and window functions combine rows.",
						   relname),
				 errhint("Aggregate in a continuous view over the output stream instead.")));

	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst(lc);
		Form_pg_attribute att;
		Oid			from;
		Node	   *expr;

		if (tle->resjunk)
			continue;
		ncols++;
		if (next == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("transform has more columns than output \"%s\"", relname),
					 errdetail("Column %d (\"%s\") of the query has no column of \"%s\" to go into; \"%s\" has %d.",
							   ncols, tle->resname ? tle->resname : "?column?", relname,
							   relname, list_length(attnos))));
		att = TupleDescAttr(desc, lfirst_int(next) - 1);
		if (att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column \"%s\" of output \"%s\" is an identity column GENERATED ALWAYS",
							NameStr(att->attname), relname),
					 errdetail("A transform fills every column of its output that is not a generated column."),
					 errhint("Make the column GENERATED BY DEFAULT and select nextval(pg_get_serial_sequence('%s', '%s')) for it.",
							 relname, NameStr(att->attname))));
		from = exprType((Node *) tle->expr);
		expr = coerce_to_target_type(NULL, (Node *) tle->expr, from,
									 att->atttypid, att->atttypmod,
									 COERCION_ASSIGNMENT, COERCE_IMPLICIT_CAST, -1);
		if (expr == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of output \"%s\" is of type %s but the transform's column %d (\"%s\") is of type %s",
							NameStr(att->attname), relname, format_type_be(att->atttypid),
							ncols, tle->resname ? tle->resname : "?column?", format_type_be(from)),
					 errhint("Cast the column to %s in the transform's query.",
							 format_type_be(att->atttypid))));
		tle->expr = (Expr *) expr;
		tle->resname = pstrdup(NameStr(att->attname));
		next = lnext(attnos, next);
	}
	if (next != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("transform has fewer columns than output \"%s\"", relname),
				 errdetail("Column \"%s\" of \"%s\" is not filled: the query has %d columns, \"%s\" %d.",
						   NameStr(TupleDescAttr(desc, lfirst_int(next) - 1)->attname), relname,
						   ncols, relname, list_length(attnos)),
				 errhint("Select a value (or NULL) for every column of \"%s\", in its order.", relname)));
	table_close(rel, NoLock);
}

/*
 * The change streams of the database (catalog rows, read as the extension),
 * as committed now: the statement's snapshot (a repeatable read
 * transaction's first) may miss one its query names.
 */
static List *
change_streams(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	StreamRunAs as;
	List	   *streams;

	stream_begin_as_extension(&as);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetLatestSnapshot());
	streams = stream_catalog_change_streams(cxt);
	PopActiveSnapshot();
	SPI_finish();
	stream_end_as_extension(&as);
	return streams;
}

/*
 * The streams one step from those in from along the transforms into streams
 * of views (downstream: from a transform's stream to its output; else back).
 */
static List *
transform_step(List *from, List *views, bool downstream)
{
	List	   *next = NIL;
	ListCell   *lv;

	foreach(lv, views)
	{
		ContinuousViewRow *row = lfirst(lv);

		if (!OidIsValid(row->output) || !stream_is_stream_relation(row->output))
			continue;
		if (list_member_oid(from, downstream ? row->stream : row->output))
			next = list_append_unique_oid(next, downstream ? row->output : row->stream);
	}
	return next;
}

/*
 * How many transforms into streams the longest chain from (downstream) or to
 * stream s has, counted up to more than STREAM_MAX_TRANSFORM_DEPTH.  The
 * streams reached in exactly k steps, step after step: the chains have no
 * cycle.
 */
static int
transform_chain_length(Oid s, List *views, bool downstream)
{
	List	   *level = list_make1_oid(s);
	int			length = 0;

	while (length <= STREAM_MAX_TRANSFORM_DEPTH &&
		   (level = transform_step(level, views, downstream)) != NIL)
		length++;
	return length;
}

/*
 * Refuse what a transform over stream, with this window, into output cannot
 * be: window options, a cycle of streams (output feeding stream, directly or
 * through the transforms and change streams of the catalog), and a chain of
 * transforms into streams longer than a batch applies.
 */
void
stream_transform_check(Oid stream, Oid output, WindowSpec *window)
{
	List	   *reached;
	List	   *changes;
	ListCell   *lc;
	List	   *views;
	int			chain;

	if (window->kind != WINDOW_NONE || window->time_column != NULL || window->ttl != NULL ||
		window->ttl_column != NULL || window->lateness != NULL || window->keep_late)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a transform cannot have window, time_column or ttl options"),
				 errdetail("A transform keeps no rows; its output does."),
				 errhint("Give the options to the continuous views that read the output stream.")));
	if (!stream_is_stream_relation(output))
		return;

	/*
	 * Transforms into streams are made one at a time (until the end of the
	 * transaction), so that two made concurrently cannot close a cycle
	 * neither sees; the lock also brings the catalog rows up to date.
	 */
	LockRelationOid(stream_catalog_relid(false), ShareRowExclusiveLock);
	changes = change_streams();

	/*
	 * The streams output feeds: itself, then the outputs of their
	 * transforms and the change streams of their views.
	 */
	reached = list_make1_oid(output);
	foreach(lc, reached)
	{
		Oid			s = lfirst_oid(lc);
		ListCell   *lv;

		if (s == stream)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("transform would make a cycle: output \"%s\" feeds stream \"%s\" it reads",
							get_rel_name(output), get_rel_name(stream)),
					 errdetail(s == output ? "A transform cannot write into the stream it reads." :
							   "Rows written into \"%s\" reach \"%s\" through other transforms or change streams.",
							   get_rel_name(output), get_rel_name(stream))));
		foreach(lv, stream_catalog_views())
		{
			ContinuousViewRow *row = lfirst(lv);
			ListCell   *lch;

			if (row->stream != s)
				continue;
			if (OidIsValid(row->output) && stream_is_stream_relation(row->output))
				reached = list_append_unique_oid(reached, row->output);
			foreach(lch, changes)
				if (((ChangeStream *) lfirst(lch))->view_id == row->id)
					reached = list_append_unique_oid(reached, ((ChangeStream *) lfirst(lch))->stream);
		}
	}

	views = stream_catalog_views();
	chain = transform_chain_length(stream, views, false) + 1 +
		transform_chain_length(output, views, true);
	if (chain > STREAM_MAX_TRANSFORM_DEPTH)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("transform would make a chain of transforms into streams longer than %d",
						STREAM_MAX_TRANSFORM_DEPTH),
				 errdetail("The longest chain through \"%s\" would have %d.",
						   get_rel_name(output), chain)));
}

/*
 * The view's rule depends on its output and on each output column it fills:
 * DROP TABLE, DROP COLUMN and ALTER COLUMN ... TYPE of them need CASCADE,
 * which drops the transform.
 */
void
stream_transform_record_dependencies(Oid view, Oid output)
{
	ObjectAddress viewaddr;
	ObjectAddress target;
	Relation	rel = table_open(output, AccessShareLock);
	ListCell   *lc;

	ObjectAddressSet(viewaddr, RewriteRelationId, get_rewrite_oid(view, ViewSelectRuleName, false));
	ObjectAddressSet(target, RelationRelationId, output);
	recordDependencyOn(&viewaddr, &target, DEPENDENCY_NORMAL);
	foreach(lc, stream_output_columns(rel))
	{
		ObjectAddressSubSet(target, RelationRelationId, output, lfirst_int(lc));
		recordDependencyOn(&viewaddr, &target, DEPENDENCY_NORMAL);
	}
	table_close(rel, NoLock);
}
