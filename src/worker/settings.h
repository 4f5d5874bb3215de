/*
 * settings.h
 *	  The settings every stream_ext process that applies events runs with.
 */
#ifndef STREAM_EXT_WORKER_SETTINGS_H
#define STREAM_EXT_WORKER_SETTINGS_H

extern void stream_worker_pin_settings(void);
extern void stream_worker_publish_settings(void);
extern bool stream_adopt_worker_settings(void);

#endif
