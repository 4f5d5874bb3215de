/*
 * state_tables.c
 *	  Creating a continuous view's state and delta tables.
 *
 * The state table holds one row per group (and window step or slice),
 * unique on its keys with NULLs equal, so that the combiner can upsert;
 * a view without keys has one row, kept unique by a constant _one column.
 * A session view holds several sessions per group: its index is not
 * unique, and the combiner finds the sessions of a group by it.  A ttl
 * column is indexed for the reaper.  The delta table has the same columns
 * after the writer's transaction id, and no index: the combiner reads it
 * whole.  A view that keeps rows has a kept-rows table in place of the
 * state table: the view's columns, no key, and the indexes its owner
 * creates on the view (ddl/view_index.c).
 *
 * State, result and delta tables keep rows of up to a page inline and
 * uncompressed (toast_tuple_target = 8160, STATE_TABLE_OPTIONS): a state row
 * is rewritten at every merge, and with PostgreSQL's default (2 kB) the
 * combiner compressed every state of a few kB again each time (pglz took a
 * third of its time on an hll + tdigest view), for values read and
 * rewritten at once; a delta row is written once and read once.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#include "catalog/catalog.h"
#include "window/state_tables.h"

#define STATE_TABLE_OPTIONS "WITH (toast_tuple_target = 8160)"

static void
spi_exec_utility(const char *sql)
{
	if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not run \"%s\"", sql);
}


/*
 * Delta tables are vacuumed often (the combiner, every 2 s at most; they
 * empty as deltas merge).  No truncation of their empty end by VACUUM: it
 * waits up to 5 s for its ACCESS EXCLUSIVE lock, which the combiner cannot
 * spend; the combiner cuts the end itself when the lock is free at once
 * (worker/delta_shrink.c).
 */
#define DELTA_TABLE_VACUUM_OPTIONS \
	"autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0, vacuum_truncate = false"

/*
 * The combiner deletes and updates rows of every table it makes, and a
 * publication FOR ALL TABLES refuses that on a table without a replica
 * identity.  The whole old row is the identity: it costs nothing unless
 * wal_level is logical.
 */
static void
create_table(const char *table, const char *definition)
{
	spi_exec_utility(psprintf("CREATE TABLE %s %s", table, definition));
	spi_exec_utility(psprintf("ALTER TABLE %s REPLICA IDENTITY FULL", table));
}

/*
 * Create the tables of view id: columns is the column list ("k1 type, ...,
 * a1 type, ..."), keys the key columns ("k1, k2", "" when none); results,
 * when not NULL, the columns of the result table of a view that keeps its
 * aggregates' results ("k1 type, ..., r1 type, ..."): that table is unique
 * on its keys.  Reads of a view that keeps its results, or reads them from
 * its state rows, find the groups with a NULL key by the state table's
 * index: on the keys for one key, else a partial index on several_keys_null
 * ("k1 IS NULL OR k2 IS NULL ...", NULL for one key or other views).
 * The delta table has no index: one made ingestion of a view of 10,000
 * groups per batch twice as costly (an index entry, and its WAL record,
 * per delta row), for key lookups that scan the few unmerged deltas (and
 * skip them when shared memory says the key has none: ddl/delta_gate.c).
 * The caller has SPI connected and runs as the extension's owner.
 */
void
stream_window_create_state_tables(int id, const char *columns, const char *keys,
								  const char *several_keys_null, const char *results, WindowSpec *w)
{
	char	   *delta = stream_view_relation_sql(id, VIEW_DELTA_TABLE);
	char	   *state = stream_view_relation_sql(id, VIEW_STATE_TABLE);
	char	   *state_name = stream_view_relation_name(id, VIEW_STATE_TABLE);

	if (w->kind == WINDOW_SESSION)
	{
		create_table(state, psprintf("(%s) " STATE_TABLE_OPTIONS, columns));
		spi_exec_utility(psprintf("CREATE INDEX %s ON %s (%s%s_session_end)",
								  quote_identifier(psprintf("%s_session", state_name)), state,
								  keys, keys[0] ? ", " : ""));
	}
	else if (keys[0] == '\0')
		create_table(state, psprintf("(%s, _one boolean NOT NULL DEFAULT true CHECK (_one) UNIQUE) "
									 STATE_TABLE_OPTIONS, columns));
	else
	{
		create_table(state, psprintf("(%s) " STATE_TABLE_OPTIONS, columns));
		spi_exec_utility(psprintf("CREATE UNIQUE INDEX %s ON %s (%s) NULLS NOT DISTINCT",
								  quote_identifier(psprintf("%s_key", state_name)), state, keys));
		if (several_keys_null != NULL)
			spi_exec_utility(psprintf("CREATE INDEX %s ON %s (%s) WHERE %s",
									  quote_identifier(psprintf("%s_null_key", state_name)),
									  state, keys, several_keys_null));
		if (results)
		{
			char	   *result = stream_view_relation_sql(id, VIEW_RESULT_TABLE);

			create_table(result, psprintf("(%s) " STATE_TABLE_OPTIONS, results));
			spi_exec_utility(psprintf("CREATE UNIQUE INDEX %s ON %s (%s) NULLS NOT DISTINCT",
									  quote_identifier(psprintf("%s_key",
																stream_view_relation_name(id, VIEW_RESULT_TABLE))),
									  result, keys));
		}
	}
	/* the reaper finds expired rows by this column */
	if (w->ttl_column != NULL)
		spi_exec_utility(psprintf("CREATE INDEX %s ON %s (%s)",
								  quote_identifier(psprintf("%s_ttl", state_name)), state,
								  quote_identifier(w->ttl_column)));
	create_table(delta, psprintf("(writer_xid " STREAM_INTERNAL_SCHEMA ".writer_xact NOT NULL, %s) "
								 "WITH (" DELTA_TABLE_VACUUM_OPTIONS ", toast_tuple_target = 8160)",
								 columns));
}

/*
 * Store column of view id's state table out of line uncompressed (storage
 * EXTERNAL), so that reads can fetch parts of its large values (a slice of
 * an uncompressed TOAST value reads only the chunks it covers).  The caller
 * has SPI connected and runs as the extension's owner.
 */
void
stream_window_store_uncompressed(int id, const char *column)
{
	spi_exec_utility(psprintf("ALTER TABLE %s ALTER COLUMN %s SET STORAGE EXTERNAL",
							  stream_view_relation_sql(id, VIEW_STATE_TABLE),
							  quote_identifier(column)));
}

/*
 * Create the tables of view id that keeps rows: its kept-rows table (the
 * state table's name) of columns ("c1 type, ..."), indexed on its ttl
 * column for the reaper, and its delta table, the same columns after the
 * writer's transaction id.  The caller has SPI connected and runs as the
 * extension's owner.
 */
void
stream_window_create_row_tables(int id, const char *columns, WindowSpec *w)
{
	char	   *state = stream_view_relation_sql(id, VIEW_STATE_TABLE);

	create_table(state, psprintf("(%s)", columns));
	if (w->ttl_column != NULL)
		spi_exec_utility(psprintf("CREATE INDEX %s ON %s (%s)",
								  quote_identifier(psprintf("%s_ttl",
															stream_view_relation_name(id, VIEW_STATE_TABLE))),
								  state, quote_identifier(w->ttl_column)));
	create_table(stream_view_relation_sql(id, VIEW_DELTA_TABLE),
				 psprintf("(writer_xid " STREAM_INTERNAL_SCHEMA ".writer_xact NOT NULL, %s) "
						  "WITH (" DELTA_TABLE_VACUUM_OPTIONS ")", columns));
}
