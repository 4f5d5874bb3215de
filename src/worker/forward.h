/*
 * forward.h
 *	  The rows of a transform into a stream, as events of that stream for
 *	  the same batch.
 */
#ifndef STREAM_EXT_FORWARD_H
#define STREAM_EXT_FORWARD_H

#include "tcop/dest.h"
#include "stream/fdw.h"

extern DestReceiver *stream_forward_receiver(Oid stream, List **outputs, bool check_insert);
extern DestReceiver *stream_forward_trial_receiver(Oid stream);
extern bool stream_is_forward_receiver(DestReceiver *dest);
extern void stream_forward_keep(DestReceiver *dest);

#endif
