/*
 * utility.h
 *	  The ProcessUtility hook: CREATE VIEW ... WITH (continuous), streams'
 *	  arrival_timestamp column, and commands that need a database's workers
 *	  out of the way.
 */
#ifndef STREAM_EXT_UTILITY_H
#define STREAM_EXT_UTILITY_H

extern void stream_utility_init(void);

#endif
