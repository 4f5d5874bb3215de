/*
 * view_errors.h
 *	  stream_ext_internal.view_errors: the events a view's expressions failed
 *	  on, at most stream_ext.max_view_errors per view.
 */
#ifndef STREAM_EXT_VIEW_ERRORS_H
#define STREAM_EXT_VIEW_ERRORS_H

/* What one batch recorded for one view */
typedef struct ViewErrorLog
{
	int			view_id;
	int			recorded;
} ViewErrorLog;

extern void stream_view_errors_begin(ViewErrorLog *log, int view_id);
extern bool stream_view_errors_full(ViewErrorLog *log);
extern void stream_view_errors_record(ViewErrorLog *log, ErrorData *edata, const char *event);
extern void stream_view_errors_record_reason(ViewErrorLog *log, int sqlerrcode,
											 const char *message);
extern void stream_view_errors_end(ViewErrorLog *log);
extern void stream_view_errors_forget(int view_id);

#endif
