/*
 * worker.h
 *	  Background processes of stream_ext: the launcher, and per database the
 *	  batch workers and the combiner.  See src/worker/README.md.
 */
#ifndef STREAM_EXT_WORKER_H
#define STREAM_EXT_WORKER_H

#include "postgres.h"

extern void stream_register_launcher(void);

extern PGDLLEXPORT void stream_ext_launcher_main(Datum arg);
extern PGDLLEXPORT void stream_ext_worker_main(Datum arg);

extern volatile sig_atomic_t stream_worker_stop_requested;
extern bool stream_worker_extension_present(void);
extern void stream_worker_handle_interrupts(void);
extern void stream_worker_report_done(void);
extern void stream_worker_report_idle(void);
extern void stream_combiner_loop(int slotno);

#endif
