/*
 * writer_apply.h
 *	  A writer applies its stream's transforms into tables itself.
 */
#ifndef STREAM_EXT_WRITER_APPLY_H
#define STREAM_EXT_WRITER_APPLY_H

extern void stream_writer_apply_init(void);

#endif
