/*
 * change_events.h
 *	  The combiner's job that emits the events of change streams.
 */
#ifndef STREAM_EXT_CHANGE_EVENTS_H
#define STREAM_EXT_CHANGE_EVENTS_H

extern void stream_change_events_init(void);

#endif
