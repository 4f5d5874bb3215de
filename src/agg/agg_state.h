/*
 * agg_state.h
 *	  Type stream_ext_internal.agg_state: the serialized internal state of
 *	  one aggregate, marked with that aggregate, which SQL cannot forge.
 */
#ifndef STREAM_EXT_AGG_AGG_STATE_H
#define STREAM_EXT_AGG_AGG_STATE_H

#include "fmgr.h"

/*
 * What an agg_state is marked with: the aggregate that made it, and the
 * identity of that aggregate's deserialization function (a hash of its
 * symbol and library).
 */
typedef struct AggStateMark
{
	Oid			aggfnoid;
	uint32		format;
} AggStateMark;

extern Oid	stream_agg_state_typid(void);
extern Oid	stream_internal_state_type(Oid deserialfn);
extern bool stream_type_holds_agg_state(Oid typid);
extern AggStateMark stream_agg_state_mark(Oid aggfnoid);
extern Datum stream_agg_state_make(AggStateMark mark, Datum serialized);
extern Datum stream_agg_state_bytes(AggStateMark mark, Datum state);
extern void stream_agg_state_check(AggStateMark mark, Datum state);

#endif
