/*
 * agg_state.h
 *	  Type stream_ext_internal.agg_state: the serialized internal state of
 *	  one aggregate, marked with that aggregate, which SQL cannot forge.
 */
#ifndef STREAM_EXT_AGG_AGG_STATE_H
#define STREAM_EXT_AGG_AGG_STATE_H

#include "fmgr.h"

extern Oid	stream_agg_state_typid(void);
extern Oid	stream_internal_state_type(Oid deserialfn);
extern bool stream_type_holds_agg_state(Oid typid);
extern uint32 stream_agg_state_format(Oid aggfnoid);
extern Datum stream_agg_state_make(Oid aggfnoid, uint32 format, Datum serialized);
extern Datum stream_agg_state_bytes(Oid aggfnoid, uint32 format, Datum state);
extern void stream_agg_state_check(Oid aggfnoid, uint32 format, Datum state);

#endif
