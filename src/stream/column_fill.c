/*
 * column_fill.c
 *	  Defaults and stored generated columns of events formed outside the
 *	  executor.
 *
 * INSERT and PostgreSQL's own COPY give a stream's columns their defaults
 * and compute its stored generated columns in the executor.  Events formed
 * elsewhere (the rows a transform writes into a stream, worker/forward.c)
 * get them here: the columns an event was not given take their defaults, as
 * the rewriter gives them to an INSERT's missing columns, then the
 * generated columns are computed over the row, as the executor computes
 * them.  A stream's arrival_timestamp is neither: its writer stamps it.
 * Expressions run as the current user, the one who writes the events.
 */
#include "postgres.h"

#include "catalog/pg_attribute.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "rewrite/rewriteHandler.h"
#include "utils/rel.h"

#include "stream/column_fill.h"
#include "stream/insert.h"

typedef struct FilledColumn
{
	AttrNumber	attnum;
	ExprState  *expr;
} FilledColumn;

struct StreamColumnFill
{
	Oid			relid;			/* the stream */
	EState	   *estate;
	TupleTableSlot *row;		/* the event so far, for generation expressions */
	int			ndefaults;
	FilledColumn *defaults;
	int			ngenerated;
	FilledColumn *generated;
};

/* Is column i (from 0) of desc a stored generated column of the stream's own? */
static bool
own_generated_column(TupleDesc desc, int i, int arrival)
{
	Form_pg_attribute att = TupleDescAttr(desc, i);

	return att->attgenerated == ATTRIBUTE_GENERATED_STORED && !att->attisdropped &&
		i + 1 != arrival;
}

/*
 * Does the stream have NOT NULL or CHECK constraints?  PostgreSQL checks
 * them for tables only; a stream's writer checks them itself (fdw.c).
 */
bool
stream_has_constraints(Relation rel)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;

	return constr != NULL && (constr->has_not_null || constr->num_check > 0);
}

/*
 * Has stream rel stored generated columns (arrival_timestamp, which its
 * writer stamps, aside)?
 */
bool
stream_has_generated_columns(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			arrival = stream_arrival_attno(rel);

	for (int i = 0; i < desc->natts; i++)
		if (own_generated_column(desc, i, arrival))
			return true;
	return false;
}

/*
 * What events of rel (a stream) that are given the columns in given (by
 * attribute number) lack, or NULL when they lack nothing.  Allocated in the
 * current memory context; stream_column_fill_end frees it.
 */
StreamColumnFill *
stream_column_fill_begin(Relation rel, Bitmapset *given)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			arrival = stream_arrival_attno(rel);
	StreamColumnFill *fill;

	fill = palloc0(sizeof(StreamColumnFill));
	fill->relid = RelationGetRelid(rel);
	fill->defaults = palloc(sizeof(FilledColumn) * desc->natts);
	fill->generated = palloc(sizeof(FilledColumn) * desc->natts);
	fill->estate = CreateExecutorState();
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Node	   *expr;

		if (att->attisdropped || i + 1 == arrival)
			continue;
		if (own_generated_column(desc, i, arrival))
		{
			expr = build_column_default(rel, i + 1);
			if (expr == NULL)
				elog(ERROR, "no generation expression found for column %d of \"%s\"",
					 i + 1, RelationGetRelationName(rel));
			fill->generated[fill->ngenerated].attnum = i + 1;
			fill->generated[fill->ngenerated++].expr = ExecPrepareExpr((Expr *) expr, fill->estate);
		}
		else if (!bms_is_member(i + 1, given) && (expr = build_column_default(rel, i + 1)) != NULL)
		{
			fill->defaults[fill->ndefaults].attnum = i + 1;
			fill->defaults[fill->ndefaults++].expr = ExecPrepareExpr((Expr *) expr, fill->estate);
		}
	}
	if (fill->ndefaults == 0 && fill->ngenerated == 0)
	{
		stream_column_fill_end(fill);
		return NULL;
	}
	if (fill->ngenerated > 0)
		fill->row = MakeSingleTupleTableSlot(CreateTupleDescCopy(desc), &TTSOpsVirtual);
	return fill;
}

/*
 * Fill in values and isnull (an event of the stream, every column) what
 * the event lacks.  The values filled in live until the next call.
 */
void
stream_column_fill(StreamColumnFill *fill, Datum *values, bool *isnull)
{
	ExprContext *econtext = GetPerTupleExprContext(fill->estate);
	MemoryContext old;

	ResetExprContext(econtext);
	old = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);
	for (int i = 0; i < fill->ndefaults; i++)
	{
		AttrNumber	a = fill->defaults[i].attnum;

		values[a - 1] = ExecEvalExpr(fill->defaults[i].expr, econtext, &isnull[a - 1]);
	}
	if (fill->ngenerated > 0)
	{
		TupleTableSlot *row = fill->row;

		ExecClearTuple(row);
		memcpy(row->tts_values, values, sizeof(Datum) * row->tts_tupleDescriptor->natts);
		memcpy(row->tts_isnull, isnull, sizeof(bool) * row->tts_tupleDescriptor->natts);
		ExecStoreVirtualTuple(row);
		row->tts_tableOid = fill->relid;	/* an expression may read tableoid */
		econtext->ecxt_scantuple = row;
		for (int i = 0; i < fill->ngenerated; i++)
		{
			AttrNumber	a = fill->generated[i].attnum;

			values[a - 1] = ExecEvalExpr(fill->generated[i].expr, econtext, &isnull[a - 1]);
		}
	}
	MemoryContextSwitchTo(old);
}

void
stream_column_fill_end(StreamColumnFill *fill)
{
	if (fill == NULL)
		return;
	if (fill->row != NULL)
	{
		TupleDesc	desc = fill->row->tts_tupleDescriptor;

		ExecDropSingleTupleTableSlot(fill->row);
		FreeTupleDesc(desc);
	}
	FreeExecutorState(fill->estate);
	pfree(fill->defaults);
	pfree(fill->generated);
	pfree(fill);
}
