/*
 * writer_rows.c
 *	  Rows of the extension's tables that carry a writer transaction
 *	  (writer_xid), settled once their writer ended.
 *
 * Delta rows, Kafka outbox rows, pending watermarks and kept late events
 * carry the transaction whose events they hold, for readers to ask whether
 * it committed (agg/writer_xact.c).  VACUUM never freezes an id kept in a
 * column, and once it has frozen every table past one, PostgreSQL truncates
 * the commit log that knows its status.  So the combiner's jobs settle such
 * rows once their writer ended for every snapshot: those of an aborted
 * writer are deleted, a committed writer's id becomes one that needs no
 * commit log (NULL, or FrozenTransactionId).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"

#include "catalog/catalog.h"

/*
 * Run change ("DELETE FROM table" or "UPDATE table SET writer_xid = ...") on
 * the rows of table that match rows (an SQL condition; $1 is arg, an xid8,
 * when given) and whose writer_xid passes status (the qualified
 * xid_committed or xid_aborted), skipping the rows others have locked: the
 * combiner waits for no one.  Returns the rows changed.
 */
static uint64
change_writer_rows(const char *table, const char *change, const char *rows,
				   const char *status, Datum *arg)
{
	int			ret = SPI_execute_with_args(psprintf("%s WHERE ctid = ANY (ARRAY("
													 "SELECT ctid FROM %s WHERE %s AND %s(writer_xid) "
													 "FOR UPDATE SKIP LOCKED))",
													 change, table, rows, status),
											arg ? 1 : 0, (Oid[]) {XID8OID}, arg, NULL, false, 0);

	if (ret != SPI_OK_DELETE && ret != SPI_OK_UPDATE)
		elog(ERROR, "could not settle the writers of the rows of %s", table);
	return SPI_processed;
}

/*
 * Settle the rows of table that match rows (as above) whose writer ended:
 * delete those of aborted writers, and set writer_xid of those of committed
 * ones to committed (SQL: NULL, or an id every snapshot sees committed).
 * *deleted and *settled get how many.  SPI connected.
 */
void
stream_settle_writer_rows(const char *table, const char *rows, const char *committed,
						  Datum *arg, uint64 *deleted, uint64 *settled)
{
	*deleted = change_writer_rows(table, psprintf("DELETE FROM %s", table), rows,
								  STREAM_INTERNAL_SCHEMA ".xid_aborted", arg);
	*settled = change_writer_rows(table, psprintf("UPDATE %s SET writer_xid = %s", table, committed),
								  psprintf("%s AND writer_xid IS DISTINCT FROM %s", rows, committed),
								  STREAM_INTERNAL_SCHEMA ".xid_committed", arg);
}
