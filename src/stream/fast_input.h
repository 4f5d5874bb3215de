/*
 * fast_input.h
 *	  Exact shortcuts for the input functions of timestamptz, timestamp and float8.
 */
#ifndef STREAM_EXT_FAST_INPUT_H
#define STREAM_EXT_FAST_INPUT_H

#include "fmgr.h"

extern void stream_fast_input_install(FmgrInfo *flinfo, Oid typid);

#endif
