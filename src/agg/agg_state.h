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
extern Datum stream_agg_state_make(Oid aggfnoid, Datum serialized);
extern Datum stream_agg_state_bytes(Oid aggfnoid, Datum state);

#endif
