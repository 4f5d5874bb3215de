/*
 * delta_shrink.h
 *	  The combiner cuts the empty end of a delta table (see delta_shrink.c).
 */
#ifndef STREAM_EXT_DELTA_SHRINK_H
#define STREAM_EXT_DELTA_SHRINK_H

#include "storage/block.h"

extern BlockNumber stream_delta_table_shrink(Oid relid, bool *again);

#endif
