/*
 * reaper.h
 *	  Deleting the expired rows of windowed views, and the time they expire
 *	  against.
 */
#ifndef STREAM_EXT_WINDOW_REAPER_H
#define STREAM_EXT_WINDOW_REAPER_H

#include "datatype/timestamp.h"
#include "window/spec.h"

/* Rows one reaping statement deletes at most */
#define REAP_BATCH_ROWS 10000

extern TimestampTz stream_window_read_time(void);
extern bool stream_window_expires(WindowSpec *spec);
extern uint64 stream_reap_batch(int id, WindowSpec *spec);

#endif
