/*
 * event_text.h
 *	  A stream event as a row literal.
 */
#ifndef STREAM_EXT_EVENT_TEXT_H
#define STREAM_EXT_EVENT_TEXT_H

#include "access/htup.h"

extern char *stream_event_as_text(Oid stream, HeapTuple event);

#endif
