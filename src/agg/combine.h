/*
 * combine.h
 *	  Merging and finalizing aggregate states through pg_aggregate, and the
 *	  transaction ids events carry.
 */
#ifndef STREAM_EXT_AGG_COMBINE_H
#define STREAM_EXT_AGG_COMBINE_H

#include "access/transam.h"

extern FullTransactionId stream_recent_full_xid(TransactionId xid);
extern bool stream_writer_visible(FullTransactionId writer);

#endif
