/*
 * view_rates.h
 *	  Events per second of each continuous view over the last 10 seconds,
 *	  minute and 5 minutes, in shared memory.
 */
#ifndef STREAM_EXT_VIEW_RATES_H
#define STREAM_EXT_VIEW_RATES_H

#include "postgres.h"

extern void stream_view_rates_shmem_request(void);
extern void stream_view_rates_shmem_startup(void);
extern void stream_view_rates_note(int view_id, int64 events);
extern void stream_view_rates_forget(int view_id);

#endif
