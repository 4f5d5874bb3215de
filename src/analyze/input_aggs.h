/*
 * input_aggs.h
 *	  Aggregates a continuous view keeps as the multiset of their inputs:
 *	  which, the Aggref workers compute for them, and their finalization.
 */
#ifndef STREAM_EXT_INPUT_AGGS_H
#define STREAM_EXT_INPUT_AGGS_H

#include "nodes/primnodes.h"

extern bool stream_agg_keeps_inputs(Aggref *aggref);
extern Aggref *stream_inputs_aggref(Aggref *aggref);
extern char *stream_inputs_final_sql(Aggref *aggref);
extern Node *stream_finalize_inputs_expr(Aggref *aggref, Node *state);
extern bool stream_inputs_read_in_slices(Aggref *aggref);
extern Node *stream_count_distinct_union_call(Aggref *aggref, Expr *state);

#endif
