/*
 * view_errors.c
 *	  Recording the events a continuous view's expressions fail on.
 *
 * Each error is a row of stream_ext_internal.view_errors (view, SQLSTATE,
 * message, the event as a row literal); view_stats counts every error.  The
 * table keeps the newest stream_ext.max_view_errors rows of each view: a
 * batch records at most that many, then drops the view's oldest beyond it.
 * Rows go with the view (DROP VIEW, truncate_continuous_view).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "catalog/catalog.h"
#include "catalog/view_errors.h"
#include "guc.h"

/* Start recording a batch's errors of view_id */
void
stream_view_errors_begin(ViewErrorLog *log, int view_id)
{
	log->view_id = view_id;
	log->recorded = 0;
}

/* Has the batch recorded as many errors as a view keeps? */
bool
stream_view_errors_full(ViewErrorLog *log)
{
	return log->recorded >= stream_ext_max_view_errors;
}

/*
 * Record an error of the view, for event (a row literal) or for no event
 * in particular (NULL), unless the batch already recorded as many as a
 * view keeps.  Runs in the batch's transaction.
 */
void
stream_view_errors_record(ViewErrorLog *log, ErrorData *edata, const char *event)
{
	Oid			argtypes[4] = {INT4OID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', event ? ' ' : 'n'};

	if (stream_view_errors_full(log))
		return;
	values[0] = Int32GetDatum(log->view_id);
	values[1] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	values[2] = CStringGetTextDatum(edata->message ? edata->message : "unknown error");
	values[3] = event ? CStringGetTextDatum(event) : (Datum) 0;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("INSERT INTO " STREAM_INTERNAL_SCHEMA ".view_errors "
							  "(view_id, sqlstate, message, event) VALUES ($1, $2, $3, $4)",
							  4, argtypes, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record a continuous view error");
	SPI_finish();
	log->recorded++;
}

/*
 * Record, for no event in particular, an error of the view that nothing
 * raised: the extension's own reason (a search or merge out of time).
 */
void
stream_view_errors_record_reason(ViewErrorLog *log, int sqlerrcode, const char *message)
{
	ErrorData	edata = {0};

	edata.sqlerrcode = sqlerrcode;
	edata.message = (char *) message;
	stream_view_errors_record(log, &edata, NULL);
}

/* After the batch recorded errors: keep the view's newest max_view_errors. */
void
stream_view_errors_end(ViewErrorLog *log)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		values[2] = {Int32GetDatum(log->view_id), Int32GetDatum(stream_ext_max_view_errors)};

	if (log->recorded == 0)
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("DELETE FROM " STREAM_INTERNAL_SCHEMA ".view_errors "
							  "WHERE ctid = ANY (ARRAY(SELECT ctid FROM " STREAM_INTERNAL_SCHEMA ".view_errors "
							  "WHERE view_id = $1 ORDER BY occurred_at DESC OFFSET $2))",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not trim the recorded errors of continuous view %d", log->view_id);
	SPI_finish();
}

/* Forget every recorded error of view_id (truncate_continuous_view). */
void
stream_view_errors_forget(int view_id)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(view_id)};

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("DELETE FROM " STREAM_INTERNAL_SCHEMA ".view_errors WHERE view_id = $1",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not forget the errors of continuous view %d", view_id);
	SPI_finish();
}
