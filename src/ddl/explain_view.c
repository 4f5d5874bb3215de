/*
 * explain_view.c
 *	  stream_ext.explain_continuous_view(view): the plan workers run over a
 *	  batch of a continuous view's events, as EXPLAIN shows it.
 *
 * The plan is made as a worker makes it (the view's owner, a restricted
 * security context, the views it joins expanded), for a batch of events from
 * several writers, and only explained: nothing runs.  It shows how each event
 * finds its rows in the tables the view joins (an index scan per event, or
 * a hash of the table per batch).
 */
#include "postgres.h"

#include "commands/explain.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/readfuncs.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "guc.h"
#include "analyze/view_query.h"
#include "catalog/catalog.h"
#include "window/spec.h"

PG_FUNCTION_INFO_V1(stream_ext_explain_continuous_view);

/* EXPLAIN (COSTS OFF) of the batch plan of the view whose row is given */
static char *
explain_batch_plan(ContinuousViewRow *row)
{
	Query	   *query = (Query *) stringToNode(row->query);
	ViewShape  *shape = stream_view_shape(query, stream_window_spec_from_text(&row->window));
	PlannedStmt *plan = stream_plan_view_batch(shape, row->definition, false);
	ExplainState *es = NewExplainState();
	instr_time	planning = {0};

	es->costs = false;
	es->format = EXPLAIN_FORMAT_TEXT;
	ExplainBeginOutput(es);
	ExplainOnePlan(plan, NULL, es, row->definition, NULL, NULL, &planning, NULL);
	ExplainEndOutput(es);
	return es->str->data;
}

/*
 * stream_ext.explain_continuous_view(view regclass) RETURNS SETOF text:
 * one row per line of the plan; for the view's owner.
 */
Datum
stream_ext_explain_continuous_view(PG_FUNCTION_ARGS)
{
	Oid			view = PG_GETARG_OID(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ContinuousViewRow *row = stream_catalog_view(stream_owned_continuous_view_id(view));
	StreamRunAs as;
	char	   *text;
	char	   *line;
	char	   *next;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	/* planning runs the owner's immutable functions: their settings go after */
	stream_begin_as_owner(&as, row->owner);
	text = explain_batch_plan(row);
	stream_end_as_owner(&as);

	for (line = text; *line != '\0'; line = next)
	{
		Datum		value;
		bool		isnull = false;

		next = strchr(line, '\n');
		if (next == NULL)
			next = line + strlen(line);
		else
			*next++ = '\0';
		value = CStringGetTextDatum(line);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	return (Datum) 0;
}
