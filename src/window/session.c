/*
 * session.c
 *	  Session windows keep partial sessions: rows with the first and last
 *	  event time of some events of a group (_session_start, _session_end) and
 *	  their aggregate states.  Workers make one per group and bucket of the
 *	  gap's width (events in one such bucket are less than a gap apart, so
 *	  always in one session); the combiner and reads chain them.
 *
 * Sorted by start, a partial session opens a new session when it starts at
 * least a gap after every earlier one of its group ended; otherwise it
 * belongs to the session before it.  This is the batch definition applied to
 * the events themselves: events of a group split into sessions wherever two
 * consecutive events are at least a gap apart.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "window/session.h"
#include "window/spec.h"

/*
 * SELECT over rows (a FROM item: a table, CTE or parenthesized subquery)
 * adding _new (1 where a session opens) and _session (its number within
 * its group).  keys: the group columns, comma separated, or "".
 */
char *
stream_sessionize_sql(const char *keys, Interval *gap, const char *rows)
{
	char	   *partition = keys[0] ? psprintf("PARTITION BY %s ", keys) : "";
	char	   *gap_sql = stream_interval_sql(gap);

	/* equal (start, end) pairs: the one that opens a session sorts first */
	return psprintf("SELECT n.*, pg_catalog.sum(n._new) OVER (%sORDER BY _session_start, _session_end, "
					"_new DESC ROWS UNBOUNDED PRECEDING) AS _session FROM ("
					"SELECT u.*, CASE WHEN u._session_start - pg_catalog.max(u._session_end) OVER "
					"(%sORDER BY _session_start, _session_end ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
					" < %s THEN 0 ELSE 1 END AS _new FROM %s u) n",
					partition, partition, gap_sql, rows);
}
