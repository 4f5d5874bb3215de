/*
 * changed_keys.h
 *	  Which result rows a read takes as they are (see changed_keys.c).
 */
#ifndef STREAM_EXT_CHANGED_KEYS_H
#define STREAM_EXT_CHANGED_KEYS_H

extern bool stream_changed_keys_hashable(Oid type);

#endif
