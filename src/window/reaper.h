/*
 * reaper.h
 *	  Deleting the expired rows of windowed views.
 */
#ifndef STREAM_EXT_WINDOW_REAPER_H
#define STREAM_EXT_WINDOW_REAPER_H

#include "window/spec.h"

/* Rows one reaping statement deletes at most */
#define REAP_BATCH_ROWS 10000

extern bool stream_window_expires(WindowSpec *spec);
extern uint64 stream_reap_batch(int id, WindowSpec *spec);
extern void stream_reaper_init(void);

#endif
