-- stream_ext 0.1: streams, continuous views, and the catalog behind them.

\echo Use "CREATE EXTENSION stream_ext" to load this file. \quit

-- The library must be preloaded: its shared memory and workers exist only then.
DO $check$
BEGIN
  IF current_setting('shared_preload_libraries') !~ '(^|[ ,/])"?stream_ext"?($|[ ,])' THEN
    RAISE EXCEPTION 'stream_ext must be loaded via shared_preload_libraries'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Add stream_ext to shared_preload_libraries in postgresql.conf and restart the server.';
  END IF;
END
$check$;

CREATE SCHEMA stream_ext;
CREATE SCHEMA stream_ext_internal;
GRANT USAGE ON SCHEMA stream_ext TO PUBLIC;
GRANT USAGE ON SCHEMA stream_ext_internal TO PUBLIC;

-- Streams: foreign tables of the server stream_ext.
CREATE FUNCTION stream_ext_internal.stream_fdw_handler() RETURNS fdw_handler
  AS 'MODULE_PATHNAME', 'stream_ext_fdw_handler' LANGUAGE C STRICT;
CREATE FUNCTION stream_ext_internal.stream_fdw_validator(text[], oid) RETURNS void
  AS 'MODULE_PATHNAME', 'stream_ext_fdw_validator' LANGUAGE C STRICT;
CREATE FOREIGN DATA WRAPPER stream_ext
  HANDLER stream_ext_internal.stream_fdw_handler
  VALIDATOR stream_ext_internal.stream_fdw_validator;
CREATE SERVER stream_ext FOREIGN DATA WRAPPER stream_ext;
GRANT USAGE ON FOREIGN SERVER stream_ext TO PUBLIC;

-- "<system identifier>/<extension OID>": the origin of catalog rows written here.
CREATE FUNCTION stream_ext_internal.catalog_origin() RETURNS text
  AS 'MODULE_PATHNAME', 'stream_ext_catalog_origin' LANGUAGE C STRICT STABLE;

-- One row per continuous view.  Rows are written only by the extension's code.
CREATE TABLE stream_ext_internal.continuous_views (
  id          serial PRIMARY KEY,
  view        regclass NOT NULL UNIQUE,
  stream      regclass NOT NULL,
  state_table regclass NOT NULL,
  delta_table regclass NOT NULL,
  definition  text NOT NULL,      -- the SELECT as the user wrote it
  query       text NOT NULL,      -- its analyzed Query tree (nodeToString)
  key_count   int  NOT NULL,      -- leading key columns of the state table
  aggregates  regprocedure[] NOT NULL,  -- aggregate of each state column, in order
  -- its time window (src/window/spec.c)
  window_kind text NOT NULL DEFAULT 'none'
              CHECK (window_kind IN ('none', 'sliding', 'hopping', 'session')),
  time_attnum int2,               -- event-time column of the stream; NULL: arrival_timestamp
  window_size interval,           -- sliding_window, hop_size or session_gap
  window_step interval,           -- step or hop_slide
  ttl         interval,
  ttl_column  text,
  allowed_lateness interval,      -- set exactly when time_attnum is
  keep_late   boolean NOT NULL DEFAULT false,
  -- a transform's target: the table or stream its rows go into (src/ddl/transform.c)
  output      regclass,
  -- the channel each row the combiner moves is sent on with pg_notify
  notify      text,
  -- where the row was written (src/ddl/restore.c): a row restored from a dump
  -- is adopted by trigger adopt_restored below
  made_in     text NOT NULL DEFAULT stream_ext_internal.catalog_origin()
);

-- The name of a view's time column, which follows renames of the stream's columns.
CREATE FUNCTION stream_ext_internal.time_column(stream regclass, attnum int2) RETURNS text
  LANGUAGE sql STABLE AS
  $$SELECT attname::text FROM pg_catalog.pg_attribute
     WHERE attrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND attnum OPERATOR(pg_catalog.=) $2$$;

-- The catalog rows, for the extension's code in any role's session (DDL on
-- a view looks its row up).  The table itself is readable by its owner only,
-- so that it is not among the relations a role is shown as readable
-- (information_schema.tables, the lists BI tools make); what it holds is
-- what pg_views and stream_ext.continuous_views show anyway.
CREATE FUNCTION stream_ext_internal.catalog_rows()
  RETURNS SETOF stream_ext_internal.continuous_views
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS
  $$SELECT * FROM stream_ext_internal.continuous_views$$;

-- Per view and worker counters; each worker updates only its own rows.
CREATE TABLE stream_ext_internal.view_counters (
  view_id      int NOT NULL REFERENCES stream_ext_internal.continuous_views ON DELETE CASCADE,
  worker       int NOT NULL,
  events       bigint NOT NULL DEFAULT 0,
  batches      bigint NOT NULL DEFAULT 0,
  errors       bigint NOT NULL DEFAULT 0,
  last_applied timestamptz,
  PRIMARY KEY (view_id, worker)
);

-- The writer transaction of delta rows and pending watermarks: an xid8 whose
-- text form is its visibility in the current snapshot ("<id> visible"), so
-- that pg_dump writes out what its snapshot counted and a restore reads it
-- back as committed or aborted here (src/agg/writer_xact.c).
CREATE TYPE stream_ext_internal.writer_xact;
CREATE FUNCTION stream_ext_internal.writer_xact_in(cstring) RETURNS stream_ext_internal.writer_xact
  AS 'MODULE_PATHNAME', 'stream_ext_writer_xact_in' LANGUAGE C STRICT IMMUTABLE;
CREATE FUNCTION stream_ext_internal.writer_xact_out(stream_ext_internal.writer_xact) RETURNS cstring
  AS 'MODULE_PATHNAME', 'stream_ext_writer_xact_out' LANGUAGE C STRICT STABLE;
CREATE TYPE stream_ext_internal.writer_xact (
  INPUT = stream_ext_internal.writer_xact_in,
  OUTPUT = stream_ext_internal.writer_xact_out,
  INTERNALLENGTH = 8, PASSEDBYVALUE, ALIGNMENT = double
);
CREATE CAST (stream_ext_internal.writer_xact AS pg_catalog.xid8) WITHOUT FUNCTION AS IMPLICIT;
CREATE CAST (pg_catalog.xid8 AS stream_ext_internal.writer_xact) WITHOUT FUNCTION AS ASSIGNMENT;

-- The highest event time of the committed events of each event-time view, and
-- the events it refused as late.  Workers lock a view's row while they apply
-- a batch to it (src/window/lateness.c).
CREATE TABLE stream_ext_internal.view_watermarks (
  view_id        int PRIMARY KEY REFERENCES stream_ext_internal.continuous_views ON DELETE CASCADE,
  max_event_time timestamptz,
  late_events    bigint NOT NULL DEFAULT 0
);

-- The highest event time of each writer transaction whose events a view
-- applied, and how many of them were late; folded into view_watermarks once
-- the writer has committed (dropped once it aborted).
CREATE TABLE stream_ext_internal.watermark_pending (
  view_id        int NOT NULL REFERENCES stream_ext_internal.continuous_views ON DELETE CASCADE,
  writer_xid     stream_ext_internal.writer_xact NOT NULL,
  max_event_time timestamptz,     -- NULL when every event of the writer was late
  late_events    bigint NOT NULL DEFAULT 0,
  queued_writer  xid8,            -- not folded while queued_writers has it
  PRIMARY KEY (view_id, writer_xid)
);

-- Writers (top-level transactions) in async mode whose records the workers
-- may not all have applied: the last records of theirs counted (one per
-- worker they sent to), of how many (src/window/lateness.c).  Rows of rings
-- made before a crash restart (rings) are deleted by the combiner.
CREATE TABLE stream_ext_internal.queued_writers (
  writer   xid8 PRIMARY KEY,
  lasts    int NOT NULL,
  last_of  int,
  rings    timestamptz NOT NULL
);

-- Late events of views with keep_late = true.
CREATE TABLE stream_ext_internal.late_events (
  view_id     int NOT NULL REFERENCES stream_ext_internal.continuous_views ON DELETE CASCADE,
  arrived_at  timestamptz NOT NULL DEFAULT now(),
  event_time  timestamptz,
  watermark   timestamptz NOT NULL,
  event       text NOT NULL,
  -- the event's writer: shown once it committed, deleted once it aborted
  writer_xid  stream_ext_internal.writer_xact
);
-- Tables without a primary key have the whole row as replica identity, so that
-- a publication FOR ALL TABLES does not refuse their deletes (no cost unless
-- wal_level is logical).
ALTER TABLE stream_ext_internal.late_events REPLICA IDENTITY FULL;
CREATE INDEX ON stream_ext_internal.late_events (view_id, arrived_at);

-- Events that a view's expressions failed on; the event was skipped for that view.
CREATE TABLE stream_ext_internal.view_errors (
  view_id     int NOT NULL REFERENCES stream_ext_internal.continuous_views ON DELETE CASCADE,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  sqlstate    text NOT NULL,
  message     text NOT NULL,
  event       text
);
ALTER TABLE stream_ext_internal.view_errors REPLICA IDENTITY FULL;
CREATE INDEX ON stream_ext_internal.view_errors (view_id, occurred_at);

-- Events held back from a view whose run needs a lock someone holds
-- (src/catalog/held_events.c): each the stream's tuple as the worker got it,
-- header and all (its xmin is the event's writer), whether its lateness
-- was judged then, and its event time if it was; the combiner applies and
-- deletes them, oldest (lowest seq) first, once the lock is free.  No
-- foreign key: its check would wait for a view's DROP in an open
-- transaction, the very wait this table avoids; rows of dropped views are
-- deleted with them.
CREATE TABLE stream_ext_internal.held_events (
  seq        bigserial PRIMARY KEY,
  view_id    int NOT NULL,
  judged     boolean NOT NULL,
  event_time timestamptz,
  event      bytea NOT NULL
);
CREATE INDEX ON stream_ext_internal.held_events (view_id, seq);
-- views holding events not judged yet fold no pending watermark (src/window/lateness.c)
CREATE INDEX ON stream_ext_internal.held_events (view_id) WHERE NOT judged;
-- the earliest time of a view's held events, which its watermark waits at
CREATE INDEX ON stream_ext_internal.held_events (view_id, event_time);

-- Aggregate state plumbing used by generated views and by the combiner.
-- COST 10: a status lookup per delta row, dearer than a key's equality, which
-- a read's filter then tests first (a key lookup skips the test for the
-- deltas of other keys)
CREATE FUNCTION stream_ext_internal.xid_visible(xid8) RETURNS boolean
  AS 'MODULE_PATHNAME', 'stream_ext_xid_visible' LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10;
-- May a delta table hold deltas of this key that the current snapshot sees?
-- The planner gates a read's scan of a delta table restricted to one key
-- with it (src/ddl/delta_gate.c); true when it cannot tell.
CREATE FUNCTION stream_ext_internal.delta_may_have_key(delta regclass, VARIADIC keys "any")
  RETURNS boolean
  AS 'MODULE_PATHNAME', 'stream_ext_delta_may_have_key' LANGUAGE C STABLE PARALLEL RESTRICTED;
-- Does a delta the current snapshot sees hold these keys (in these columns
-- of the delta table), or is a key NULL?  A read of a view that keeps its
-- results takes a group's result row unless so (src/ddl/changed_keys.c);
-- only for roles that may read the view.  delta_read_allowed: may the
-- current role, folded into a constant when planned.
CREATE FUNCTION stream_ext_internal.delta_read_support(internal) RETURNS internal
  AS 'MODULE_PATHNAME', 'stream_ext_delta_read_support' LANGUAGE C STRICT;
CREATE FUNCTION stream_ext_internal.delta_changes_key(delta regclass, columns int2[],
                                                      VARIADIC keys "any")
  RETURNS boolean
  AS 'MODULE_PATHNAME', 'stream_ext_delta_changes_key' LANGUAGE C STABLE PARALLEL SAFE
  COST 2 SUPPORT stream_ext_internal.delta_read_support;
CREATE FUNCTION stream_ext_internal.delta_read_allowed(delta regclass) RETURNS boolean
  AS 'MODULE_PATHNAME', 'stream_ext_delta_read_allowed' LANGUAGE C STRICT STABLE PARALLEL SAFE
  SUPPORT stream_ext_internal.delta_read_support;
-- max_event_time - allowed_lateness, -infinity below the timestamps there are
CREATE FUNCTION stream_ext_internal.watermark(timestamptz, interval) RETURNS timestamptz
  AS 'MODULE_PATHNAME', 'stream_ext_watermark' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION stream_ext_internal.event_xid8(xid) RETURNS xid8
  AS 'MODULE_PATHNAME', 'stream_ext_event_xid8' LANGUAGE C STRICT STABLE PARALLEL SAFE;
CREATE FUNCTION stream_ext_internal.xid_committed(xid8) RETURNS boolean
  AS 'MODULE_PATHNAME', 'stream_ext_xid_committed' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION stream_ext_internal.xid_aborted(xid8) RETURNS boolean
  AS 'MODULE_PATHNAME', 'stream_ext_xid_aborted' LANGUAGE C STRICT VOLATILE;

-- The stored partial state of an aggregate whose state is internal: its
-- serialized bytes, marked with the aggregate (src/agg/agg_state.c).  No cast
-- makes one, and only a superuser may enter one as text or binary (pg_restore
-- does): a deserialization function trusts the bytes it is given.
CREATE TYPE stream_ext_internal.agg_state;
CREATE FUNCTION stream_ext_internal.agg_state_in(cstring) RETURNS stream_ext_internal.agg_state
  AS 'MODULE_PATHNAME', 'stream_ext_agg_state_in' LANGUAGE C STRICT STABLE;
CREATE FUNCTION stream_ext_internal.agg_state_out(stream_ext_internal.agg_state) RETURNS cstring
  AS 'MODULE_PATHNAME', 'stream_ext_agg_state_out' LANGUAGE C STRICT STABLE;
CREATE FUNCTION stream_ext_internal.agg_state_recv(internal) RETURNS stream_ext_internal.agg_state
  AS 'MODULE_PATHNAME', 'stream_ext_agg_state_recv' LANGUAGE C STRICT STABLE;
CREATE FUNCTION stream_ext_internal.agg_state_send(stream_ext_internal.agg_state) RETURNS bytea
  AS 'MODULE_PATHNAME', 'stream_ext_agg_state_send' LANGUAGE C STRICT STABLE;
CREATE TYPE stream_ext_internal.agg_state (
  INPUT = stream_ext_internal.agg_state_in,
  OUTPUT = stream_ext_internal.agg_state_out,
  RECEIVE = stream_ext_internal.agg_state_recv,
  SEND = stream_ext_internal.agg_state_send,
  INTERNALLENGTH = VARIABLE,
  ALIGNMENT = int4,
  STORAGE = extended
);

CREATE FUNCTION stream_ext_internal.combine_states(regprocedure, anyelement, anyelement)
  RETURNS anyelement
  AS 'MODULE_PATHNAME', 'stream_ext_combine_states' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION stream_ext_internal.combine_agg_trans(internal, regprocedure, anyelement)
  RETURNS internal
  AS 'MODULE_PATHNAME', 'stream_ext_combine_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION stream_ext_internal.combine_agg_final(internal, regprocedure, anyelement)
  RETURNS anyelement
  AS 'MODULE_PATHNAME', 'stream_ext_combine_agg_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE stream_ext_internal.combine_agg(regprocedure, anyelement) (
  SFUNC = stream_ext_internal.combine_agg_trans,
  STYPE = internal,
  SSPACE = 64,            -- a MergeState and a small state: hash aggregation sizes by it
  FINALFUNC = stream_ext_internal.combine_agg_final,
  FINALFUNC_EXTRA
);

-- The result of an aggregate from one partial state: state tables keep it.
CREATE FUNCTION stream_ext_internal.finalize_state(regprocedure, anyelement, anycompatible)
  RETURNS anycompatible
  AS 'MODULE_PATHNAME', 'stream_ext_finalize_state' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION stream_ext_internal.finalize_agg_trans(internal, regprocedure, anyelement, anycompatible)
  RETURNS internal
  AS 'MODULE_PATHNAME', 'stream_ext_combine_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION stream_ext_internal.finalize_agg_final(internal, regprocedure, anyelement, anycompatible)
  RETURNS anycompatible
  AS 'MODULE_PATHNAME', 'stream_ext_finalize_agg_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
-- Parallel safe, so that reads of big views can be parallel; views of an
-- aggregate that is not (a user's, say) finalize it with the second one.
CREATE AGGREGATE stream_ext_internal.finalize_agg(regprocedure, anyelement, anycompatible) (
  SFUNC = stream_ext_internal.finalize_agg_trans,
  STYPE = internal,
  SSPACE = 64,
  FINALFUNC = stream_ext_internal.finalize_agg_final,
  FINALFUNC_EXTRA,
  PARALLEL = SAFE
);
CREATE AGGREGATE stream_ext_internal.finalize_agg_parallel_unsafe(regprocedure, anyelement, anycompatible) (
  SFUNC = stream_ext_internal.finalize_agg_trans,
  STYPE = internal,
  SSPACE = 64,
  FINALFUNC = stream_ext_internal.finalize_agg_final,
  FINALFUNC_EXTRA
);

-- combine(column): a continuous view's aggregate column rolled up to the
-- query's groups.  The planner rewrites every call (ddl/rollup.c); the
-- transition function runs only for a call it did not, and refuses it.
CREATE FUNCTION stream_ext_internal.combine_unrewritten(anyelement, anyelement)
  RETURNS anyelement
  AS 'MODULE_PATHNAME', 'stream_ext_combine_unrewritten' LANGUAGE C IMMUTABLE;
CREATE AGGREGATE stream_ext.combine(anyelement) (
  SFUNC = stream_ext_internal.combine_unrewritten,
  STYPE = anyelement
);

-- The partial state of aggregates that cannot be merged otherwise (DISTINCT,
-- ORDER BY inside, ordered-set aggregates, no combine function): the multiset
-- of their input rows (src/agg/inputs.c), finalized by running the original
-- aggregate over them (src/agg/inputs_final.c).
CREATE FUNCTION stream_ext_internal.inputs_trans(internal, VARIADIC "any")
  RETURNS internal
  AS 'MODULE_PATHNAME', 'stream_ext_inputs_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION stream_ext_internal.inputs_combine(internal, internal)
  RETURNS internal
  AS 'MODULE_PATHNAME', 'stream_ext_inputs_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION stream_ext_internal.inputs_serialize(internal)
  RETURNS bytea
  AS 'MODULE_PATHNAME', 'stream_ext_inputs_serialize' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION stream_ext_internal.inputs_deserialize(bytea, internal)
  RETURNS internal
  AS 'MODULE_PATHNAME', 'stream_ext_inputs_deserialize' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE stream_ext_internal.inputs_agg(VARIADIC "any") (
  SFUNC = stream_ext_internal.inputs_trans,
  STYPE = internal,
  COMBINEFUNC = stream_ext_internal.inputs_combine,
  SERIALFUNC = stream_ext_internal.inputs_serialize,
  DESERIALFUNC = stream_ext_internal.inputs_deserialize,
  FINALFUNC = stream_ext_internal.inputs_serialize,
  PARALLEL = SAFE
);
CREATE FUNCTION stream_ext_internal.inputs_rows(bytea, boolean)
  RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'stream_ext_inputs_rows' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION stream_ext_internal.inputs_count_distinct(bytea)
  RETURNS bigint
  AS 'MODULE_PATHNAME', 'stream_ext_inputs_count_distinct' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION stream_ext_internal.inputs_percentile_float8(bytea, float8, boolean)
  RETURNS float8
  AS 'MODULE_PATHNAME', 'stream_ext_inputs_percentile_float8' LANGUAGE C IMMUTABLE PARALLEL SAFE;
-- count(DISTINCT x) of the input sets of a group (src/agg/distinct_union.c)
CREATE FUNCTION stream_ext_internal.count_distinct_union_trans(internal, bytea)
  RETURNS internal
  AS 'MODULE_PATHNAME', 'stream_ext_count_distinct_union_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION stream_ext_internal.count_distinct_union_final(internal)
  RETURNS bigint
  AS 'MODULE_PATHNAME', 'stream_ext_count_distinct_union_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE stream_ext_internal.count_distinct_union(bytea) (
  SFUNC = stream_ext_internal.count_distinct_union_trans,
  STYPE = internal,
  FINALFUNC = stream_ext_internal.count_distinct_union_final,
  FINALFUNC_MODIFY = SHAREABLE,
  PARALLEL = SAFE
);
-- Runs a read-only query with the rights of its caller: restricted, as it
-- runs SQL.
CREATE FUNCTION stream_ext_internal.finalize_inputs(bytea, text, regprocedure, anyelement)
  RETURNS anyelement
  AS 'MODULE_PATHNAME', 'stream_ext_finalize_inputs' LANGUAGE C STABLE PARALLEL RESTRICTED;

-- Notifies workers that the set of continuous views changed.
CREATE FUNCTION stream_ext_internal.catalog_changed() RETURNS void
  AS 'MODULE_PATHNAME', 'stream_ext_catalog_changed' LANGUAGE C VOLATILE;

-- Runs the statements stream_ext handles itself (CREATE VIEW ... WITH (continuous),
-- COPY into a stream): the utility hook sends them down PostgreSQL's hook chain as
-- a CALL of this procedure, so that pg_stat_statements and other hooks see them.
-- Called any other way, it refuses; so it stays executable by PUBLIC, as every role
-- may create a continuous view or COPY into a stream it can write.
CREATE PROCEDURE stream_ext_internal.run_utility()
  LANGUAGE c AS 'MODULE_PATHNAME', 'stream_ext_run_utility';

-- User-facing API.
CREATE FUNCTION stream_ext.create_continuous_view(name text, query text,
                                                  options text[] DEFAULT '{}')
  RETURNS regclass
  AS 'MODULE_PATHNAME', 'stream_ext_create_continuous_view' LANGUAGE C VOLATILE;

-- "Now" for sliding windows, ttl and the reaper: stream_ext.read_time when set.
CREATE FUNCTION stream_ext.read_time() RETURNS timestamptz
  AS 'MODULE_PATHNAME', 'stream_ext_read_time' LANGUAGE C STABLE PARALLEL SAFE;

-- Bounds of a sliding window read (src/window/sliding.c), in the type of its time.
CREATE FUNCTION stream_ext_internal.sliding_bound(int, interval, interval, interval, interval, anyelement)
  RETURNS anyelement
  AS 'MODULE_PATHNAME', 'stream_ext_sliding_bound' LANGUAGE C STABLE PARALLEL SAFE;

-- Delete a view's expired rows now (the combiner also does it in the background).
CREATE FUNCTION stream_ext.reap_expired(view regclass) RETURNS bigint
  AS 'MODULE_PATHNAME', 'stream_ext_reap_expired' LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION stream_ext.truncate_continuous_view(name regclass) RETURNS void
  AS 'MODULE_PATHNAME', 'stream_ext_truncate_continuous_view' LANGUAGE C STRICT VOLATILE;

-- Change streams (src/changes/): the stream each view's changes go to, as
-- events (old row, new row, final) the combiner emits.
CREATE TABLE stream_ext_internal.change_streams (
  view_id int PRIMARY KEY,
  stream  regclass NOT NULL UNIQUE
);
-- A group key as change streams name its group (src/changes/key_identity.c);
-- run by the combiner as views' owners.
CREATE FUNCTION stream_ext_internal.key_identity(anyelement) RETURNS anyelement
  AS 'MODULE_PATHNAME', 'stream_ext_key_identity' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION stream_ext.create_change_stream(view regclass, name text) RETURNS regclass
  AS 'MODULE_PATHNAME', 'stream_ext_create_change_stream' LANGUAGE C STRICT VOLATILE;

-- The plan workers run over a batch of a continuous view's events (EXPLAIN
-- text, COSTS OFF): how joined tables are looked up.  For the view's owner.
CREATE FUNCTION stream_ext.explain_continuous_view(view regclass) RETURNS SETOF text
  AS 'MODULE_PATHNAME', 'stream_ext_explain_continuous_view' LANGUAGE C STRICT VOLATILE;

-- The defining query of a continuous view, from the Query tree in the catalog.
CREATE FUNCTION stream_ext_internal.query_definition(view regclass) RETURNS text
  AS 'MODULE_PATHNAME', 'stream_ext_query_definition' LANGUAGE C STRICT STABLE;

-- Who may call the functions above.  A view's SELECT runs functions with the
-- rights of the role reading it, so what views call stays executable by
-- PUBLIC and checks its arguments: finalize_agg (and
-- finalize_agg_parallel_unsafe), xid_visible, delta_may_have_key,
-- delta_changes_key, delta_read_allowed, sliding_bound,
-- read_time, query_definition, time_column, finalize_inputs, inputs_rows,
-- inputs_count_distinct, inputs_percentile_float8 and count_distinct_union
-- (event_xid8 runs in workers
-- with the view owner's rights).  The combiner runs its merge statements as
-- the view's owner too, so combine_agg, combine_states, finalize_state (of
-- the state tables' generated columns), xid_committed and xid_aborted stay
-- executable and check their arguments as well, and key_identity (a pure
-- function of its argument) runs in the combiner's emissions.  The rest
-- is called only by PostgreSQL itself (FDW handler and validator, support
-- functions of the aggregates, checked against the aggregate's owner), or by
-- the extension's SECURITY DEFINER functions.
REVOKE ALL ON FUNCTION stream_ext_internal.stream_fdw_handler(),
                       stream_ext_internal.delta_read_support(internal),
                       stream_ext_internal.stream_fdw_validator(text[], oid),
                       stream_ext_internal.combine_agg_trans(internal, regprocedure, anyelement),
                       stream_ext_internal.combine_agg_final(internal, regprocedure, anyelement),
                       stream_ext_internal.finalize_agg_trans(internal, regprocedure, anyelement, anycompatible),
                       stream_ext_internal.finalize_agg_final(internal, regprocedure, anyelement, anycompatible),
                       stream_ext_internal.combine_unrewritten(anyelement, anyelement),
                       stream_ext_internal.agg_state_in(cstring),
                       stream_ext_internal.agg_state_out(stream_ext_internal.agg_state),
                       stream_ext_internal.agg_state_recv(internal),
                       stream_ext_internal.agg_state_send(stream_ext_internal.agg_state),

                       stream_ext_internal.inputs_trans(internal, "any"),
                       stream_ext_internal.inputs_combine(internal, internal),
                       stream_ext_internal.inputs_serialize(internal),
                       stream_ext_internal.inputs_deserialize(bytea, internal),
                       stream_ext_internal.count_distinct_union_trans(internal, bytea),
                       stream_ext_internal.count_distinct_union_final(internal),
                       stream_ext_internal.catalog_changed()
  FROM PUBLIC;

CREATE VIEW stream_ext.streams AS
  SELECT c.oid::regclass AS stream,
         n.nspname AS schema,
         c.relname AS name,
         (SELECT count(*) FROM stream_ext_internal.continuous_views v
           WHERE v.stream = c.oid)::int AS continuous_views
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_catalog.pg_foreign_table ft ON ft.ftrelid = c.oid
    JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver
   WHERE s.srvname = 'stream_ext';

CREATE VIEW stream_ext.continuous_views AS
  SELECT v.view AS name,
         v.stream,
         stream_ext_internal.query_definition(v.view) AS definition,
         v.state_table,
         nullif(v.window_kind, 'none') AS window_kind,
         coalesce(stream_ext_internal.time_column(v.stream, v.time_attnum),
                  'arrival_timestamp') AS time_column,
         v.window_size,
         v.window_step,
         v.ttl,
         v.ttl_column,
         v.allowed_lateness,
         v.keep_late,
         v.output,
         v.notify
    FROM stream_ext_internal.continuous_views v;

-- Recent events per second of each view (shared memory, src/metrics/view_rates.c).
CREATE FUNCTION stream_ext_internal.view_rates(
    OUT view_id int, OUT rate_10s float8, OUT rate_1m float8, OUT rate_5m float8)
  RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'stream_ext_view_rates' LANGUAGE C STRICT VOLATILE;

-- The watermark of each event-time view now: the highest event time of its
-- committed events (those folded in, and those of writers visible now)
-- minus its allowed lateness.  view_stats shows it; the reaper and change
-- streams compare with it (src/window/lateness.c reads it here).
-- (Held events whose lateness was judged will be applied: the watermark
-- waits at the earliest of their times, so that no window they fall in
-- looks final before they are in it.)
CREATE VIEW stream_ext_internal.view_watermark AS
  SELECT m.view_id, CASE WHEN m.watermark IS NOT NULL THEN least(m.watermark, m.held) END AS watermark
    FROM (SELECT w.view_id,
                 stream_ext_internal.watermark(
                   greatest(w.max_event_time,
                            (SELECT max(p.max_event_time) FROM stream_ext_internal.watermark_pending p
                              WHERE p.view_id = w.view_id AND stream_ext_internal.xid_visible(p.writer_xid)
                                AND NOT EXISTS (SELECT FROM stream_ext_internal.queued_writers q
                                                 WHERE q.writer = p.queued_writer)
                                AND NOT EXISTS (SELECT FROM stream_ext_internal.held_events h
                                                 WHERE h.view_id = p.view_id AND NOT h.judged))),
                   v.allowed_lateness) AS watermark,
                 (SELECT min(h.event_time) FROM stream_ext_internal.held_events h
                   WHERE h.view_id = w.view_id) AS held
            FROM stream_ext_internal.view_watermarks w
            JOIN stream_ext_internal.continuous_views v ON v.id = w.view_id) m;

CREATE VIEW stream_ext.view_stats AS
  SELECT v.view AS name,
         coalesce(sum(c.events), 0)::bigint AS events,
         coalesce(sum(c.batches), 0)::bigint AS batches,
         max(c.last_applied) AS last_applied,
         coalesce(sum(c.errors), 0)::bigint AS errors,
         w.late_events + coalesce((SELECT sum(p.late_events) FROM stream_ext_internal.watermark_pending p
                                    WHERE p.view_id = v.id AND stream_ext_internal.xid_visible(p.writer_xid)),
                                  0)::bigint AS late_events,
         -- the greatest event time seen is data: for those who may read the view
         (SELECT n.watermark FROM stream_ext_internal.view_watermark n
           WHERE n.view_id = v.id AND pg_catalog.has_table_privilege(v.view, 'SELECT'))
           AS watermark,
         coalesce(r.rate_10s, 0) AS rate_10s,
         coalesce(r.rate_1m, 0) AS rate_1m,
         coalesce(r.rate_5m, 0) AS rate_5m,
         -- delta rows not merged yet, from the table's statistics (the
         -- workers and the combiner report them at least every second)
         pg_catalog.pg_stat_get_live_tuples(v.delta_table) AS unmerged_deltas,
         -- events held back while a lock its run needs is held by someone
         (SELECT count(*) FROM stream_ext_internal.held_events h WHERE h.view_id = v.id)
           AS held_events,
         -- what the definition costs: rows of the state table (groups and
         -- window steps, or kept rows; from its statistics) and the bytes
         -- on disk of its state, result and delta tables with their indexes
         pg_catalog.pg_stat_get_live_tuples(v.state_table) AS state_rows,
         (pg_catalog.pg_total_relation_size(v.state_table)
          + pg_catalog.pg_total_relation_size(v.delta_table)
          + coalesce(pg_catalog.pg_total_relation_size(
                       pg_catalog.to_regclass('stream_ext_internal.result_' || v.id)), 0))::bigint
           AS state_bytes
    FROM stream_ext_internal.continuous_views v
    LEFT JOIN stream_ext_internal.view_counters c ON c.view_id = v.id
    LEFT JOIN stream_ext_internal.view_watermarks w ON w.view_id = v.id
    LEFT JOIN stream_ext_internal.view_rates() r ON r.view_id = v.id
   GROUP BY v.id, v.view, v.state_table, v.delta_table, w.late_events,
            r.rate_10s, r.rate_1m, r.rate_5m;

-- This database's processes and writers (shared memory, src/metrics/processes.c).
CREATE FUNCTION stream_ext_internal.worker_status(
    OUT worker int, OUT pid int, OUT state text, OUT queue_bytes bigint,
    OUT queue_size bigint, OUT writers_waiting_queue int, OUT writers_waiting_commit int)
  RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'stream_ext_worker_status' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION stream_ext_internal.combiner_status(
    OUT pid int, OUT state text, OUT pending_merges bigint, OUT last_merge_at timestamptz,
    OUT workers_failed_since timestamptz)
  RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'stream_ext_combiner_status' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION stream_ext_internal.waiting_writers(
    OUT pid int, OUT waiting_for text, OUT worker int, OUT since timestamptz)
  RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'stream_ext_waiting_writers' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION stream_ext_internal.commit_latency(
    OUT commits bigint, OUT p50_ms float8, OUT p99_ms float8, OUT max_ms float8)
  RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'stream_ext_commit_latency' LANGUAGE C STRICT VOLATILE;

CREATE VIEW stream_ext.workers AS
  SELECT s.worker, s.pid, s.state, s.queue_bytes, s.queue_size,
         round(s.queue_bytes::numeric / s.queue_size, 4)::float8 AS queue_fill,
         s.writers_waiting_queue, s.writers_waiting_commit
    FROM stream_ext_internal.worker_status() s;

CREATE VIEW stream_ext.combiner AS
  SELECT s.pid, s.state, s.pending_merges,
         (SELECT coalesce(sum(pg_catalog.pg_stat_get_live_tuples(v.delta_table)), 0)::bigint
            FROM stream_ext_internal.continuous_views v) AS unmerged_deltas,
         s.last_merge_at, s.workers_failed_since
    FROM stream_ext_internal.combiner_status() s;

CREATE VIEW stream_ext.waiting_writers AS
  SELECT w.pid, w.waiting_for, w.worker, w.since, a.usename, a.query
    FROM stream_ext_internal.waiting_writers() w
    LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = w.pid;

CREATE VIEW stream_ext.commit_latency AS
  SELECT l.commits, l.p50_ms, l.p99_ms, l.max_ms
    FROM stream_ext_internal.commit_latency() l;

-- The errors and late events of the views the reader may read; the events
-- themselves (every column of the stream, which the view may not show) only
-- to those who may read the stream.  These views and the others that hide
-- rows by privilege are security barriers: a cheap function in a reader's
-- WHERE would otherwise see the hidden rows before the filter.
CREATE VIEW stream_ext.view_errors WITH (security_barrier) AS
  SELECT v.view AS name, e.occurred_at, e.sqlstate,
         -- a message quotes the value that failed ("invalid input syntax ...: <value>")
         CASE WHEN pg_catalog.has_table_privilege(v.stream, 'SELECT') THEN e.message END AS message,
         CASE WHEN pg_catalog.has_table_privilege(v.stream, 'SELECT') THEN e.event END AS event
    FROM stream_ext_internal.view_errors e
    JOIN stream_ext_internal.continuous_views v ON v.id = e.view_id
   WHERE pg_catalog.has_table_privilege(v.view, 'SELECT');

CREATE VIEW stream_ext.late_events WITH (security_barrier) AS
  SELECT v.view AS name, l.arrived_at, l.event_time, l.watermark,
         CASE WHEN pg_catalog.has_table_privilege(v.stream, 'SELECT') THEN l.event END AS event
    FROM stream_ext_internal.late_events l
    JOIN stream_ext_internal.continuous_views v ON v.id = l.view_id
   WHERE pg_catalog.has_table_privilege(v.view, 'SELECT')
     AND (l.writer_xid IS NULL OR stream_ext_internal.xid_visible(l.writer_xid));

CREATE VIEW stream_ext.change_streams WITH (security_barrier) AS
  SELECT v.view, c.stream
    FROM stream_ext_internal.change_streams c
    JOIN stream_ext_internal.continuous_views v ON v.id = c.view_id
   WHERE pg_catalog.has_table_privilege(v.view, 'SELECT');

GRANT SELECT ON stream_ext.streams, stream_ext.continuous_views,
                stream_ext.view_stats, stream_ext.view_errors,
                stream_ext.late_events, stream_ext.workers, stream_ext.combiner,
                stream_ext.waiting_writers, stream_ext.commit_latency,
                stream_ext.change_streams TO PUBLIC;

-- DROP VIEW (or DROP ... CASCADE of a stream) removes the state behind a view.
-- (Quietly: the tables DROP OWNED dropped already are no one's business.)
-- Does the DROP being run cascade (src/ddl/drop_behavior.c)?  The tables of
-- a dropped view are dropped as the statement said: other roles' objects
-- that depend on them (a view over one) stop a drop that does not cascade.
CREATE FUNCTION stream_ext_internal.drop_cascades() RETURNS boolean
  LANGUAGE C STABLE AS 'MODULE_PATHNAME', 'stream_ext_drop_cascades';
REVOKE ALL ON FUNCTION stream_ext_internal.drop_cascades() FROM PUBLIC;

CREATE FUNCTION stream_ext_internal.on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
  cv record;
  found boolean := false;
  behavior text := CASE WHEN stream_ext_internal.drop_cascades() THEN ' CASCADE' ELSE '' END;
BEGIN
  FOR cv IN
    SELECT v.id
      FROM pg_catalog.pg_event_trigger_dropped_objects() d
      JOIN stream_ext_internal.continuous_views v ON v.view::oid = d.objid
     WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0
  LOOP
    found := true;
    -- the delta table before the catalog row (whose delete locks the view's
    -- watermark row) and the state table: the order of truncate_continuous_view,
    -- of a worker holding the view's events back, and of the combiner's merges
    -- and TTL deletes, so that none of them deadlocks with the DROP
    IF to_regclass(format('stream_ext_internal.%I', 'delta_' || cv.id)) IS NOT NULL THEN
      EXECUTE format('LOCK TABLE stream_ext_internal.%I IN ACCESS EXCLUSIVE MODE', 'delta_' || cv.id);
    END IF;
    DELETE FROM stream_ext_internal.continuous_views WHERE id = cv.id;
    DELETE FROM stream_ext_internal.held_events WHERE view_id = cv.id;
    EXECUTE format('DROP TABLE IF EXISTS stream_ext_internal.%I, stream_ext_internal.%I',
                   'state_' || cv.id, 'delta_' || cv.id) || behavior;
    IF to_regclass(format('stream_ext_internal.%I', 'result_' || cv.id)) IS NOT NULL THEN
      EXECUTE format('DROP TABLE stream_ext_internal.%I', 'result_' || cv.id) || behavior;
    END IF;
  END LOOP;
  -- change streams whose stream or view is gone, and their tables
  FOR cv IN
    DELETE FROM stream_ext_internal.change_streams c
     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class r WHERE r.oid = c.stream::oid)
        OR NOT EXISTS (SELECT 1 FROM stream_ext_internal.continuous_views v WHERE v.id = c.view_id)
    RETURNING c.view_id AS id
  LOOP
    -- gone with the stream, unless restored from a dump (pg_depend is not)
    IF to_regclass(format('stream_ext_internal.%I', 'changed_' || cv.id)) IS NOT NULL THEN
      EXECUTE format('DROP TABLE stream_ext_internal.%I, stream_ext_internal.%I',
                     'changed_' || cv.id, 'emitted_' || cv.id) || behavior;
    END IF;
  END LOOP;
  IF found THEN
    PERFORM stream_ext_internal.catalog_changed();
  END IF;
END
$$;
CREATE EVENT TRIGGER stream_ext_sql_drop ON sql_drop
  EXECUTE FUNCTION stream_ext_internal.on_sql_drop();
REVOKE ALL ON FUNCTION stream_ext_internal.on_sql_drop() FROM PUBLIC;

-- Kafka ingestion (src/kafka/README.md).  Members of this role (and superusers)
-- may start consumers.  Roles are cluster-wide: the role outlives the extension,
-- and CREATE EXTENSION in another database may create it at the same time (then
-- ours fails on the unique name once theirs commits, or finds it made).
DO $role$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'stream_ext_kafka') THEN
    BEGIN
      CREATE ROLE stream_ext_kafka NOLOGIN;
    EXCEPTION WHEN unique_violation OR duplicate_object THEN
      IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'stream_ext_kafka') THEN
        RAISE;
      END IF;
    END;
  END IF;
END
$role$;

-- One row per consumer of a topic into a stream.  Not readable by PUBLIC: options
-- may hold secrets (SASL and SSL passwords); stream_ext.kafka_consumers masks them.
CREATE TABLE stream_ext_internal.kafka_consumers (
  id               serial PRIMARY KEY,
  stream           regclass NOT NULL,
  topic            text NOT NULL,
  brokers          text NOT NULL,
  format           text NOT NULL CHECK (format IN ('json', 'csv', 'text')),
  format_options   jsonb NOT NULL DEFAULT '{}',   -- delimiter, quote, escape, header, null
  key_column       name,
  partition_column name,
  offset_column    name,
  timestamp_column name,
  start            text NOT NULL,                 -- for partitions without a stored offset
  parallelism      int NOT NULL CHECK (parallelism BETWEEN 1 AND 64),
  group_id         text,
  options          jsonb NOT NULL DEFAULT '{}',   -- librdkafka configuration
  enabled          boolean NOT NULL DEFAULT true,
  enabled_in       oid,                           -- the database it was enabled in (a copy's is another)
  errors           bigint NOT NULL DEFAULT 0,     -- messages set aside in kafka_errors, ever
  created_by       name NOT NULL DEFAULT current_user,
  made_in          text NOT NULL DEFAULT stream_ext_internal.catalog_origin(),
  UNIQUE (stream, topic)
);

-- Next offset to consume of each partition, written in the transaction that
-- applies the messages before it.
CREATE TABLE stream_ext_internal.kafka_offsets (
  consumer_id int NOT NULL REFERENCES stream_ext_internal.kafka_consumers ON DELETE CASCADE,
  partition   int NOT NULL,
  next_offset bigint NOT NULL,     -- -2: the brokers have not given its start yet;
                                   -- -3: reset in a group (src/kafka/assign.c)
  PRIMARY KEY (consumer_id, partition)
);

-- Messages that could not be decoded into the stream's columns: the newest
-- stream_ext.kafka_max_errors of each consumer (src/kafka/batch.c).
CREATE TABLE stream_ext_internal.kafka_errors (
  consumer_id int NOT NULL REFERENCES stream_ext_internal.kafka_consumers ON DELETE CASCADE,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  partition   int NOT NULL,
  "offset"    bigint NOT NULL,
  error       text NOT NULL,
  payload     bytea             -- cut to stream_ext.kafka_error_payload_limit bytes
);
ALTER TABLE stream_ext_internal.kafka_errors REPLICA IDENTITY FULL;
CREATE INDEX ON stream_ext_internal.kafka_errors (consumer_id, occurred_at);

CREATE FUNCTION stream_ext_internal.kafka_stop_workers(consumer_id int, producer boolean DEFAULT false)
  RETURNS void
  AS 'MODULE_PATHNAME', 'stream_ext_kafka_stop_workers' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION stream_ext_internal.kafka_worker_status(
    OUT consumer_id int, OUT worker int, OUT pid int, OUT state text,
    OUT partitions int[], OUT messages bigint, OUT lag bigint,
    OUT rate float8, OUT last_error text, OUT last_error_at timestamptz,
    OUT producer boolean)
  RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'stream_ext_kafka_worker_status' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION stream_ext_internal.kafka_free_slots() RETURNS int
  AS 'MODULE_PATHNAME', 'stream_ext_kafka_free_slots' LANGUAGE C STRICT VOLATILE;
-- Why a consumer or producer with fewer workers than it wants (has of wants)
-- waits, when it is that no slot of the server is free; else NULL.
CREATE FUNCTION stream_ext_internal.kafka_no_slot_error(has bigint, wants int) RETURNS text
LANGUAGE sql VOLATILE SET search_path = pg_catalog AS $$
  SELECT format('no Kafka worker slot free: the server''s %s (stream_ext.kafka_max_workers) are all taken',
                current_setting('stream_ext.kafka_max_workers'))
   WHERE has < wants AND stream_ext_internal.kafka_free_slots() = 0
$$;
CREATE FUNCTION stream_ext_internal.kafka_ensure_supervisor() RETURNS void
  AS 'MODULE_PATHNAME', 'stream_ext_kafka_ensure_supervisor' LANGUAGE C STRICT VOLATILE;
-- Lock the stream a consumer or producer is made for, and check it is still
-- there (src/kafka/api.c): a concurrent DROP cannot leave it orphaned.
CREATE FUNCTION stream_ext_internal.kafka_lock_stream(regclass) RETURNS void
  AS 'MODULE_PATHNAME', 'stream_ext_kafka_lock_stream' LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION stream_ext_internal.kafka_lock_stream(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION stream_ext_internal.kafka_stop_workers(int, boolean),
                       stream_ext_internal.kafka_ensure_supervisor() FROM PUBLIC;

-- A start position: earliest, latest, a timestamp, or a JSON object of
-- partition: offset (partitions not in it start at the earliest offset).
-- Returns it as the workers read it (src/kafka/assign.c): a timestamp as
-- the instant the caller meant (in the caller's TimeZone and DateStyle,
-- 'now' at the call), in UTC; an object as jsonb writes it.
CREATE FUNCTION stream_ext_internal.kafka_check_start(p_start text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog AS $$
DECLARE
  t timestamptz;
BEGIN
  IF p_start IN ('earliest', 'latest') THEN
    RETURN p_start;
  END IF;
  IF p_start IS NULL THEN
    RAISE EXCEPTION 'start must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  BEGIN
    IF left(ltrim(p_start), 1) = '{' THEN
      IF EXISTS (SELECT 1 FROM jsonb_each_text(p_start::jsonb)
                  WHERE key::int < 0 OR value::bigint < 0) THEN
        RAISE EXCEPTION 'negative';
      END IF;
      RETURN p_start::jsonb::text;
    END IF;
    t := p_start::timestamptz;
    IF NOT isfinite(t) THEN
      RAISE EXCEPTION 'infinite';
    END IF;
    IF t < '1970-01-01 00:00+00' THEN
      RETURN 'earliest';        -- before any Kafka timestamp
    END IF;
    RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00';
  EXCEPTION WHEN others THEN
    RAISE EXCEPTION 'invalid start position "%"', p_start
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use earliest, latest, a timestamp, or a JSON object of partition: offset such as ''{"0": 42, "1": 7}''.';
  END;
END
$$;

-- Raises unless role may manage Kafka consumers of the stream: a member of
-- stream_ext_kafka (superusers are) with INSERT on the stream (with
-- p_producer, producers: SELECT on the stream, whose events they send).  The public
-- functions check current_user; the SECURITY DEFINER functions below, which
-- members of stream_ext_kafka may also call directly, check session_user (they
-- cannot see the invoker; a session never gets more than its login role has),
-- and, when they configure, the role the workers will act for (below).
-- Inside a security-restricted operation (a continuous view's expression run by
-- a worker, an index expression, REFRESH MATERIALIZED VIEW) the session user is
-- not the role that asked: the internal functions cannot check it there.
CREATE FUNCTION stream_ext_internal.in_security_restricted_operation() RETURNS boolean
  AS 'MODULE_PATHNAME', 'stream_ext_in_security_restricted_operation' LANGUAGE C VOLATILE;

CREATE FUNCTION stream_ext_internal.kafka_check_caller(p_stream regclass, p_role name,
                                                      p_producer boolean DEFAULT false)
  RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog AS $$
DECLARE
  what text := CASE WHEN p_producer THEN 'producers' ELSE 'consumers' END;
BEGIN
  IF stream_ext_internal.in_security_restricted_operation() THEN
    RAISE EXCEPTION 'cannot manage Kafka % in a security-restricted operation', what
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'A continuous view''s expressions, index expressions and REFRESH MATERIALIZED VIEW run as another role than the session''s.';
  END IF;
  IF NOT pg_has_role(p_role, 'stream_ext_kafka', 'MEMBER') THEN
    RAISE EXCEPTION 'permission denied to manage Kafka %', what
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = format('Only superusers and members of role stream_ext_kafka may start, stop or reset %s.', what),
            HINT = 'GRANT stream_ext_kafka TO the role.';
  END IF;
  IF p_producer AND NOT has_table_privilege(p_role, p_stream, 'SELECT') THEN
    RAISE EXCEPTION 'permission denied for stream "%"', p_stream
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'A producer sends its stream''s events: it needs SELECT on the stream.';
  END IF;
  IF NOT p_producer AND NOT has_table_privilege(p_role, p_stream, 'INSERT') THEN
    RAISE EXCEPTION 'permission denied for stream "%"', p_stream
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'A consumer inserts into its stream: it needs INSERT on the stream.';
  END IF;
  IF NOT p_producer AND EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_table t,
                                       pg_catalog.pg_options_to_table(t.ftoptions) o
                                 WHERE t.ftrelid = p_stream AND o.option_name = 'changes_of') THEN
    RAISE EXCEPTION 'cannot write into change stream "%"', p_stream
      USING ERRCODE = 'feature_not_supported',
            DETAIL = 'Its events are the changes of a continuous view, which stream_ext emits.';
  END IF;
END
$$;

-- May p_role change, stop, reset or drop the consumer or producer of stream
-- p_stream that acts for p_acts_for?  Only members of that role or of the
-- stream's owner (superusers are members of every role), as only an
-- object's owner alters or drops it: another member of stream_ext_kafka with
-- the stream's SELECT or INSERT privilege may not drop events a producer
-- has not sent yet, nor take a consumer over.
CREATE FUNCTION stream_ext_internal.kafka_check_manager(p_stream regclass, p_acts_for name,
                                                        p_role name, p_producer boolean)
  RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog AS $$
BEGIN
  IF pg_has_role(p_role, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = p_stream), 'MEMBER')
     OR (EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = p_acts_for)
         AND pg_has_role(p_role, p_acts_for, 'MEMBER')) THEN
    RETURN;
  END IF;
  RAISE EXCEPTION 'permission denied to manage the Kafka % of stream "%"',
                  CASE WHEN p_producer THEN 'producer' ELSE 'consumer' END, p_stream
    USING ERRCODE = 'insufficient_privilege',
          DETAIL = format('It acts for role %s; only members of that role or of the stream''s owner may change, stop or drop it.',
                          quote_ident(p_acts_for));
END
$$;

REVOKE ALL ON FUNCTION stream_ext_internal.kafka_check_manager(regclass, name, name, boolean) FROM PUBLIC;

-- The role a consumer or producer being configured acts for (its workers
-- check that role's rights at every batch, kafka/rights.c): the current_user
-- of whoever called kafka_note_invoker (the public functions, just before
-- they call the SECURITY DEFINER ones below, which cannot see their
-- invoker), taken once (src/kafka/api.c).  Inside SECURITY DEFINER code,
-- that is the code's owner, never the session's role.
CREATE FUNCTION stream_ext_internal.kafka_note_invoker() RETURNS void
  AS 'MODULE_PATHNAME', 'stream_ext_kafka_note_invoker' LANGUAGE C VOLATILE;
CREATE FUNCTION stream_ext_internal.kafka_take_invoker() RETURNS name
  AS 'MODULE_PATHNAME', 'stream_ext_kafka_take_invoker' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION stream_ext_internal.kafka_take_invoker() FROM PUBLIC;
-- The noted role (kafka_take_invoker), or an error when there was none.
CREATE FUNCTION stream_ext_internal.kafka_acting_role(r name) RETURNS name
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog AS $$
BEGIN
  IF r IS NULL THEN
    RAISE EXCEPTION 'Kafka consumers and producers are configured through stream_ext.kafka_consume and stream_ext.kafka_produce'
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'They act for the role that calls those functions, which the internal ones cannot see.',
            HINT = 'Call stream_ext_internal.kafka_note_invoker() just before, as they do.';
  END IF;
  RETURN r;
END
$$;
REVOKE ALL ON FUNCTION stream_ext_internal.kafka_acting_role(name) FROM PUBLIC;

-- Checks and stores a consumer; runs as the extension owner.  EXECUTE only for
-- stream_ext_kafka (and superusers).
-- librdkafka options naming a file, a library or a command of the server
-- (ssl.*.location, plugin.library.paths, sasl.kerberos.kinit.cmd, ...) are
-- read, loaded or run by librdkafka as the server's operating system user:
-- only superusers may set them, as only they may read server files.
CREATE FUNCTION stream_ext_internal.kafka_check_librdkafka_option(name text, value text, producer boolean)
  RETURNS void AS 'MODULE_PATHNAME', 'stream_ext_kafka_check_librdkafka_option'
  LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION stream_ext_internal.kafka_check_librdkafka_option(text, text, boolean) FROM PUBLIC;

CREATE FUNCTION stream_ext_internal.kafka_check_options(p_options jsonb, p_role name, p_producer boolean)
  RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog AS $$
DECLARE
  k text;
  v jsonb;
  super boolean := coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = p_role), false);
BEGIN
  FOR k, v IN SELECT * FROM pg_catalog.jsonb_each(p_options) LOOP
    IF pg_catalog.jsonb_typeof(v) NOT IN ('string', 'number', 'boolean') THEN
      RAISE EXCEPTION 'librdkafka option "%" must be a string, a number or a boolean', k
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT super AND pg_catalog.lower(k) ~ '(location|path|file|cmd|keytab|engine|provider|plugin)' THEN
      RAISE EXCEPTION 'only superusers may set librdkafka option "%"', k
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = 'It names a file, a library or a command of the server, which librdkafka would read, load or run as the server''s operating system user.',
              HINT = 'Give certificates and keys inline (ssl.ca.pem, ssl.certificate.pem, ssl.key.pem), or have a superuser start the consumer or producer.';
    END IF;
    IF NOT super AND pg_catalog.lower(k) IN ('debug', 'log_level') THEN
      RAISE EXCEPTION 'only superusers may set librdkafka option "%"', k
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = 'librdkafka''s debugging output goes to the server log, thousands of lines a minute.';
    END IF;
    PERFORM stream_ext_internal.kafka_check_librdkafka_option(k, v #>> '{}', p_producer);
  END LOOP;
  -- Kerberos (GSSAPI, librdkafka's default SASL mechanism) authenticates
  -- with the server's own credentials (its operating system user's ticket
  -- cache, which another consumer's kinit may have filled): only superusers
  -- may use it
  IF NOT super AND pg_catalog.lower(COALESCE(p_options->>'security.protocol', '')) LIKE 'sasl%'
     AND pg_catalog.upper(COALESCE(p_options->>'sasl.mechanisms', p_options->>'sasl.mechanism', 'GSSAPI')) ~ 'GSSAPI' THEN
    RAISE EXCEPTION 'only superusers may use SASL mechanism GSSAPI'
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'Kerberos would authenticate with the credentials of the server''s operating system user; it is librdkafka''s default mechanism.',
            HINT = 'Set sasl.mechanisms to PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER, or have a superuser start the consumer or producer.';
  END IF;
  -- one name for each of those two settings (librdkafka takes either; which
  -- one wins when both are given depends on the order they are set in)
  IF p_producer AND ((p_options ? 'message.timeout.ms' AND p_options ? 'delivery.timeout.ms')
                     OR (p_options ? 'linger.ms' AND p_options ? 'queue.buffering.max.ms')) THEN
    RAISE EXCEPTION 'librdkafka options "%" and "%" are the same setting',
        CASE WHEN p_options ? 'linger.ms' AND p_options ? 'queue.buffering.max.ms'
             THEN 'linger.ms' ELSE 'message.timeout.ms' END,
        CASE WHEN p_options ? 'linger.ms' AND p_options ? 'queue.buffering.max.ms'
             THEN 'queue.buffering.max.ms' ELSE 'delivery.timeout.ms' END
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Give one of them.';
  END IF;
  -- the producer's worker lingers 5 ms and gives up on a message after 30 s
  -- unless told otherwise; librdkafka refuses to start unless it gives up
  -- (if ever: 0) later than it lingers
  IF p_producer AND COALESCE(p_options->>'message.timeout.ms', p_options->>'delivery.timeout.ms', '30000')::float8 <> 0
     AND COALESCE(p_options->>'message.timeout.ms', p_options->>'delivery.timeout.ms', '30000')::float8
         <= COALESCE(p_options->>'linger.ms', p_options->>'queue.buffering.max.ms', '5')::float8 THEN
    RAISE EXCEPTION 'librdkafka option "message.timeout.ms" must be greater than "linger.ms"'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'The producer''s defaults are 30000 and 5.';
  END IF;
END
$$;
REVOKE ALL ON FUNCTION stream_ext_internal.kafka_check_options(jsonb, name, boolean) FROM PUBLIC;

-- The format options of a consumer or a producer: names among allowed;
-- delimiter, quote and escape one one-byte character each, not a line break
-- (a character of several bytes would be cut to its first); header true or
-- false; for csv, a delimiter other than the quote; for text, a delimiter
-- COPY accepts; a null string holding no line break, delimiter or quote (as
-- COPY requires: it would read back as something else).
CREATE FUNCTION stream_ext_internal.kafka_check_format_options(p_format_options jsonb, p_format text,
                                                              p_allowed text[], p_hint text)
  RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
  k text;
  v text;
  d text;
  q text;
  n text;
BEGIN
  FOR k, v IN SELECT key, value FROM jsonb_each_text(p_format_options) LOOP
    IF k <> ALL (p_allowed) THEN
      RAISE EXCEPTION 'unknown format option "%"', k
        USING ERRCODE = 'invalid_parameter_value', HINT = p_hint;
    END IF;
    IF k IN ('delimiter', 'quote', 'escape') AND (octet_length(v) IS DISTINCT FROM 1 OR v IN (E'\n', E'\r')) THEN
      RAISE EXCEPTION 'format option "%" must be a single one-byte character other than a line break', k
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF k = 'header' AND v IS DISTINCT FROM 'true' AND v IS DISTINCT FROM 'false' THEN
      RAISE EXCEPTION 'format option "header" must be true or false' USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  IF p_format NOT IN ('csv', 'text') THEN
    RETURN;
  END IF;
  d := coalesce(p_format_options->>'delimiter', CASE p_format WHEN 'csv' THEN ',' ELSE E'\t' END);
  q := coalesce(p_format_options->>'quote', '"');
  n := p_format_options->>'null';
  IF p_format = 'csv' AND d = q THEN
    RAISE EXCEPTION 'format options "delimiter" and "quote" must differ' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_format = 'text' AND strpos(E'\\.abcdefghijklmnopqrstuvwxyz0123456789', d) > 0 THEN
    RAISE EXCEPTION 'format option "delimiter" cannot be "%" in text format', d
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'After a backslash, as text format escapes, a dot, a lowercase letter or a digit stands for something else.';
  END IF;
  IF strpos(n, E'\n') > 0 OR strpos(n, E'\r') > 0 OR strpos(n, d) > 0 OR (p_format = 'csv' AND strpos(n, q) > 0) THEN
    RAISE EXCEPTION 'format option "null" cannot contain a line break, the delimiter or the quote'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;
REVOKE ALL ON FUNCTION stream_ext_internal.kafka_check_format_options(jsonb, text, text[], text) FROM PUBLIC;

CREATE FUNCTION stream_ext_internal.kafka_register(
    p_stream regclass, p_topic text, p_brokers text, p_format text, p_start text,
    p_parallelism int, p_group_id text, p_options jsonb, p_format_options jsonb,
    p_key_column name, p_partition_column name, p_offset_column name,
    p_timestamp_column name)
  RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
  p_role name;
  cid int;
  acts_for name;
  col name;
  mapped name[] := '{}';
  typ regtype;
BEGIN
  p_role := stream_ext_internal.kafka_take_invoker();   -- first: a note is taken once
  PERFORM stream_ext_internal.kafka_check_caller(p_stream, session_user);
  p_role := stream_ext_internal.kafka_acting_role(p_role);
  PERFORM stream_ext_internal.kafka_check_caller(p_stream, p_role);
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_table ft
                   JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver
                  WHERE ft.ftrelid = p_stream AND s.srvname = 'stream_ext') THEN
    RAISE EXCEPTION '"%" is not a stream', p_stream
      USING ERRCODE = 'wrong_object_type',
            HINT = 'Create it with CREATE FOREIGN TABLE ... SERVER stream_ext.';
  END IF;
  IF p_format IS NULL THEN
    RAISE EXCEPTION 'format must not be null'
      USING ERRCODE = 'null_value_not_allowed', HINT = 'Use json, csv or text.';
  END IF;
  IF p_format NOT IN ('json', 'csv', 'text') THEN
    RAISE EXCEPTION 'unknown format "%"', p_format
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use json, csv or text.';
  END IF;
  IF p_parallelism IS NULL OR p_parallelism NOT BETWEEN 1 AND 64 THEN
    RAISE EXCEPTION 'parallelism must be between 1 and 64' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF coalesce(p_topic, '') = '' OR coalesce(p_brokers, '') = '' THEN
    RAISE EXCEPTION 'topic and brokers must be given' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  p_start := stream_ext_internal.kafka_check_start(p_start);
  IF jsonb_typeof(p_options) IS DISTINCT FROM 'object'
     OR jsonb_typeof(p_format_options) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'options and format options must be JSON objects' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM stream_ext_internal.kafka_check_options(p_options, p_role, false);
  PERFORM stream_ext_internal.kafka_check_format_options(p_format_options, p_format,
            ARRAY['delimiter', 'quote', 'escape', 'header', 'null'],
            'Format options are delimiter, quote, escape, header and null.');
  FOREACH col IN ARRAY ARRAY[p_key_column, p_partition_column, p_offset_column, p_timestamp_column] LOOP
    CONTINUE WHEN col IS NULL;
    IF mapped @> ARRAY[col] THEN
      RAISE EXCEPTION 'column "%" is mapped twice', col
        USING ERRCODE = 'invalid_parameter_value',
              DETAIL = 'A column takes one of the message''s key, partition, offset and timestamp.';
    END IF;
    mapped := mapped || col;
    SELECT a.atttypid::regtype INTO typ FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = p_stream AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND OR col = 'arrival_timestamp' THEN
      RAISE EXCEPTION 'stream "%" has no column "%" to map', p_stream, col
        USING ERRCODE = 'undefined_column';
    END IF;
  END LOOP;

  SELECT id, created_by INTO cid, acts_for FROM stream_ext_internal.kafka_consumers
   WHERE stream = p_stream AND topic = p_topic FOR UPDATE;
  IF FOUND THEN
    PERFORM stream_ext_internal.kafka_check_manager(p_stream, acts_for, p_role, false);
    PERFORM stream_ext_internal.kafka_stop_workers(cid);
    UPDATE stream_ext_internal.kafka_consumers
       SET brokers = p_brokers, format = p_format, format_options = p_format_options,
           key_column = p_key_column, partition_column = p_partition_column,
           offset_column = p_offset_column, timestamp_column = p_timestamp_column,
           start = p_start, parallelism = p_parallelism, group_id = p_group_id,
           options = p_options, enabled = true, created_by = p_role
     WHERE id = cid;
  ELSE
    PERFORM stream_ext_internal.kafka_lock_stream(p_stream);   -- a DROP waits for the row
    INSERT INTO stream_ext_internal.kafka_consumers
      (stream, topic, brokers, format, format_options, key_column, partition_column,
       offset_column, timestamp_column, start, parallelism, group_id, options, created_by)
    VALUES (p_stream, p_topic, p_brokers, p_format, p_format_options, p_key_column,
            p_partition_column, p_offset_column, p_timestamp_column, p_start,
            p_parallelism, p_group_id, p_options, p_role)
    RETURNING id INTO cid;
  END IF;
  PERFORM stream_ext_internal.kafka_ensure_supervisor();
  RETURN cid;
END
$$;

-- Stops a consumer's workers (keeping its offsets); with p_start, also forgets
-- its offsets so that it starts again at p_start.
CREATE FUNCTION stream_ext_internal.kafka_control(p_stream regclass, p_topic text,
                                                  p_enable boolean, p_start text)
  RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
  cid int;
  acts_for name;
  p_role name;
BEGIN
  p_role := stream_ext_internal.kafka_take_invoker();   -- first: a note is taken once
  PERFORM stream_ext_internal.kafka_check_caller(p_stream, session_user);
  SELECT id, created_by INTO cid, acts_for FROM stream_ext_internal.kafka_consumers
   WHERE stream = p_stream AND topic = p_topic FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'stream "%" has no consumer of topic "%"', p_stream, p_topic
      USING ERRCODE = 'undefined_object';
  END IF;
  PERFORM stream_ext_internal.kafka_check_manager(p_stream, acts_for, session_user, false);
  -- and the code that called: another role's SECURITY DEFINER function that a
  -- manager's session runs may not manage it
  p_role := stream_ext_internal.kafka_acting_role(p_role);
  PERFORM stream_ext_internal.kafka_check_manager(p_stream, acts_for, p_role, false);
  IF p_start IS NOT NULL THEN
    p_start := stream_ext_internal.kafka_check_start(p_start);
  END IF;
  PERFORM stream_ext_internal.kafka_stop_workers(cid);
  IF p_start IS NOT NULL THEN
    -- a group's own committed offsets are in Kafka: its partitions this server
    -- read are marked to start at p_start whatever those say (src/kafka/assign.c)
    IF (SELECT c.group_id IS NOT NULL FROM stream_ext_internal.kafka_consumers c WHERE c.id = cid) THEN
      UPDATE stream_ext_internal.kafka_offsets SET next_offset = -3 WHERE consumer_id = cid;
    ELSE
      DELETE FROM stream_ext_internal.kafka_offsets WHERE consumer_id = cid;
    END IF;
    UPDATE stream_ext_internal.kafka_consumers SET start = p_start WHERE id = cid;
  ELSE
    UPDATE stream_ext_internal.kafka_consumers SET enabled = p_enable WHERE id = cid;
  END IF;
  PERFORM stream_ext_internal.kafka_ensure_supervisor();
END
$$;

REVOKE ALL ON FUNCTION stream_ext_internal.kafka_register(regclass, text, text, text, text, int, text, jsonb, jsonb, name, name, name, name),
                       stream_ext_internal.kafka_control(regclass, text, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stream_ext_internal.kafka_register(regclass, text, text, text, text, int, text, jsonb, jsonb, name, name, name, name),
                          stream_ext_internal.kafka_control(regclass, text, boolean, text) TO stream_ext_kafka;

CREATE FUNCTION stream_ext.kafka_consume(
    stream regclass, topic text, brokers text,
    format text DEFAULT 'json', start text DEFAULT 'earliest',
    parallelism int DEFAULT 1, group_id text DEFAULT NULL,
    options jsonb DEFAULT '{}', format_options jsonb DEFAULT '{}',
    key_column name DEFAULT NULL, partition_column name DEFAULT NULL,
    offset_column name DEFAULT NULL, timestamp_column name DEFAULT NULL)
  RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  PERFORM stream_ext_internal.kafka_check_caller(stream, current_user);
  PERFORM stream_ext_internal.kafka_note_invoker();
  PERFORM stream_ext_internal.kafka_register(stream, topic, brokers, format, start,
            parallelism, group_id, options, format_options, key_column,
            partition_column, offset_column, timestamp_column);
END
$$;

CREATE FUNCTION stream_ext.kafka_stop(stream regclass, topic text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  PERFORM stream_ext_internal.kafka_check_caller(stream, current_user);
  PERFORM stream_ext_internal.kafka_note_invoker();
  PERFORM stream_ext_internal.kafka_control(stream, topic, false, NULL);
END
$$;

CREATE FUNCTION stream_ext.kafka_start(stream regclass, topic text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  PERFORM stream_ext_internal.kafka_check_caller(stream, current_user);
  PERFORM stream_ext_internal.kafka_note_invoker();
  PERFORM stream_ext_internal.kafka_control(stream, topic, true, NULL);
END
$$;

CREATE FUNCTION stream_ext.kafka_reset(stream regclass, topic text, start text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  PERFORM stream_ext_internal.kafka_check_caller(stream, current_user);
  IF start IS NULL THEN
    RAISE EXCEPTION 'start must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  PERFORM stream_ext_internal.kafka_note_invoker();
  PERFORM stream_ext_internal.kafka_control(stream, topic, NULL, start);
END
$$;

-- librdkafka options whose values are secrets: shown as '********'.
CREATE FUNCTION stream_ext_internal.kafka_mask_options(jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog AS $$
  SELECT coalesce(jsonb_object_agg(key,
           CASE WHEN key ~* '(password|secret|jaas|\.pem$|key$|token|credentials|oauthbearer\.config)'
                THEN to_jsonb('********'::text) ELSE value END), '{}')
    FROM jsonb_each($1)
$$;

CREATE VIEW stream_ext.kafka_consumers AS
  SELECT c.stream, c.topic, c.brokers, c.format, c.parallelism, c.group_id, c.enabled,
         CASE WHEN NOT c.enabled THEN 'stopped'
              WHEN count(s.pid) FILTER (WHERE s.state = 'running') = c.parallelism THEN 'running'
              WHEN count(s.last_error) FILTER (WHERE s.state <> 'running') > 0 THEN 'retrying'
              WHEN stream_ext_internal.kafka_no_slot_error(count(s.consumer_id), c.parallelism)
                   IS NOT NULL THEN 'retrying'
              ELSE 'starting' END AS state,
         (SELECT array_agg(o.partition ORDER BY o.partition)
            FROM stream_ext_internal.kafka_offsets o WHERE o.consumer_id = c.id) AS partitions,
         (SELECT array_agg(CASE WHEN o.next_offset >= 0 THEN o.next_offset END ORDER BY o.partition)
            FROM stream_ext_internal.kafka_offsets o WHERE o.consumer_id = c.id) AS next_offsets,
         -- known only when every worker runs and the brokers gave its watermarks
         CASE WHEN c.enabled AND count(s.lag) = c.parallelism THEN sum(s.lag)::bigint END AS lag,
         coalesce(sum(s.messages), 0)::bigint AS messages,
         c.errors,
         sum(s.rate) AS rate,
         coalesce(CASE WHEN c.enabled THEN stream_ext_internal.kafka_no_slot_error(
                                             count(s.consumer_id), c.parallelism) END,
                  (array_agg(s.last_error ORDER BY s.last_error_at DESC NULLS LAST))[1]) AS last_error,
         max(s.last_error_at) AS last_error_at,
         stream_ext_internal.kafka_mask_options(c.options) AS options,
         c.format_options, c.key_column, c.partition_column, c.offset_column,
         c.timestamp_column, c.start
    FROM stream_ext_internal.kafka_consumers c
    LEFT JOIN stream_ext_internal.kafka_worker_status() s
           ON s.consumer_id = c.id AND NOT s.producer
   GROUP BY c.id;

-- payloads are event contents, and an error quotes the value that failed: as in
-- view_errors, only for roles that may read the stream's events
CREATE VIEW stream_ext.kafka_errors WITH (security_barrier) AS
  SELECT c.stream, c.topic, e.partition, e."offset", e.occurred_at,
         CASE WHEN pg_catalog.has_table_privilege(c.stream, 'SELECT') THEN e.error END AS error,
         CASE WHEN pg_catalog.has_table_privilege(c.stream, 'SELECT') THEN e.payload END AS payload
    FROM stream_ext_internal.kafka_errors e
    JOIN stream_ext_internal.kafka_consumers c ON c.id = e.consumer_id
   WHERE pg_catalog.pg_has_role('stream_ext_kafka', 'MEMBER');

GRANT SELECT ON stream_ext.kafka_consumers, stream_ext.kafka_errors TO PUBLIC;

-- Kafka sink (src/kafka/README.md, "Producers").  One row per producer of a
-- stream's events to a topic.  Its staging view, a row-keeping continuous view
-- of the stream in this schema, keeps the stream's committed events until the
-- producer has moved them to the outbox; the outbox keeps a batch's formatted
-- messages, each with its event number, until the brokers acknowledged them.
CREATE TABLE stream_ext_internal.kafka_producers (
  id               serial PRIMARY KEY,
  stream           regclass NOT NULL,
  topic            text NOT NULL,
  brokers          text NOT NULL,
  format           text NOT NULL CHECK (format IN ('json', 'csv', 'text')),
  format_options   jsonb NOT NULL DEFAULT '{}',   -- delimiter, quote, null
  key_column       name,
  options          jsonb NOT NULL DEFAULT '{}',   -- librdkafka configuration
  staging          regclass,                      -- stream_ext_internal.kafka_sink_<id>
  produced         bigint NOT NULL DEFAULT 0,     -- messages the brokers acknowledged
  errors           bigint NOT NULL DEFAULT 0,     -- messages set aside in kafka_sink_errors, ever
  enabled          boolean NOT NULL DEFAULT true,
  enabled_in       oid,                           -- the database it was enabled in (a copy's is another)
  created_by       name NOT NULL DEFAULT current_user,
  made_in          text NOT NULL DEFAULT stream_ext_internal.catalog_origin(),
  UNIQUE (stream, topic)
);

CREATE SEQUENCE stream_ext_internal.kafka_event_seq;
-- A producer's messages staged and not yet acknowledged, a row per batch (one
-- insert and one delete per batch, not per message): element i of the arrays
-- is one message.  first_event and n say which row and how many without
-- reading the arrays.  writer_xid: the transaction whose events a worker
-- staged (src/kafka/README.md): the producer takes the row once it committed;
-- NULL when the row committed with them, or once settled (outbox_settle.c).
CREATE TABLE stream_ext_internal.kafka_outbox (
  producer_id int NOT NULL REFERENCES stream_ext_internal.kafka_producers ON DELETE CASCADE,
  first_event bigint NOT NULL,      -- events[1]
  n           int NOT NULL,         -- cardinality(events)
  events      bigint[] NOT NULL,    -- the events' numbers: header stream_ext_event
  keys        text[] NOT NULL,      -- NULL element: no key
  messages    text[] NOT NULL,
  writer_xid  stream_ext_internal.writer_xact
);
ALTER TABLE stream_ext_internal.kafka_outbox REPLICA IDENTITY FULL;
CREATE INDEX ON stream_ext_internal.kafka_outbox (producer_id, first_event);
-- the rows whose writer is still to be settled (src/kafka/outbox_settle.c)
CREATE INDEX ON stream_ext_internal.kafka_outbox (first_event) WHERE writer_xid IS NOT NULL;
-- written once and read once: compressed with lz4, which costs less than
-- writing (and WAL-logging) the messages as they are, where the server has
-- it (pglz would cost more than it saves: then stored as they are)
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_settings
              WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
    ALTER TABLE stream_ext_internal.kafka_outbox ALTER COLUMN events SET COMPRESSION lz4,
                                                 ALTER COLUMN keys SET COMPRESSION lz4,
                                                 ALTER COLUMN messages SET COMPRESSION lz4;
  ELSE
    ALTER TABLE stream_ext_internal.kafka_outbox ALTER COLUMN events SET STORAGE EXTERNAL,
                                                 ALTER COLUMN keys SET STORAGE EXTERNAL,
                                                 ALTER COLUMN messages SET STORAGE EXTERNAL;
  END IF;
END
$$;

-- The staging view's query: the stream's columns but arrival_timestamp.
CREATE FUNCTION stream_ext_internal.kafka_staging_columns(p_stream regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
  SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
    FROM pg_catalog.pg_attribute a
   WHERE a.attrelid = p_stream AND a.attnum > 0 AND NOT a.attisdropped
     AND a.attname <> 'arrival_timestamp'
$$;

-- Checks and stores a producer and creates its staging view; runs as the
-- extension owner.  EXECUTE only for stream_ext_kafka (and superusers).
CREATE FUNCTION stream_ext_internal.kafka_register_producer(
    p_stream regclass, p_topic text, p_brokers text, p_format text,
    p_key_column name, p_options jsonb, p_format_options jsonb)
  RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
  p_role name;
  pid int;
  acts_for name;
BEGIN
  p_role := stream_ext_internal.kafka_take_invoker();   -- first: a note is taken once
  PERFORM stream_ext_internal.kafka_check_caller(p_stream, session_user, true);
  p_role := stream_ext_internal.kafka_acting_role(p_role);
  PERFORM stream_ext_internal.kafka_check_caller(p_stream, p_role, true);
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_table ft
                   JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver
                  WHERE ft.ftrelid = p_stream AND s.srvname = 'stream_ext') THEN
    RAISE EXCEPTION '"%" is not a stream', p_stream
      USING ERRCODE = 'wrong_object_type',
            HINT = 'Create it with CREATE FOREIGN TABLE ... SERVER stream_ext.';
  END IF;
  IF p_format IS NULL THEN
    RAISE EXCEPTION 'format must not be null'
      USING ERRCODE = 'null_value_not_allowed', HINT = 'Use json, csv or text.';
  END IF;
  IF p_format NOT IN ('json', 'csv', 'text') THEN
    RAISE EXCEPTION 'unknown format "%"', p_format
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use json, csv or text.';
  END IF;
  IF coalesce(p_topic, '') = '' OR coalesce(p_brokers, '') = '' THEN
    RAISE EXCEPTION 'topic and brokers must be given' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF jsonb_typeof(p_options) IS DISTINCT FROM 'object'
     OR jsonb_typeof(p_format_options) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'options and format options must be JSON objects' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM stream_ext_internal.kafka_check_options(p_options, p_role, true);
  PERFORM stream_ext_internal.kafka_check_format_options(p_format_options, p_format,
            ARRAY['delimiter', 'quote', 'null'],
            'Format options of a producer are delimiter, quote and null.');
  IF p_key_column IS NOT NULL AND (p_key_column = 'arrival_timestamp' OR NOT EXISTS (
       SELECT 1 FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = p_stream AND a.attname = p_key_column AND a.attnum > 0
          AND NOT a.attisdropped)) THEN
    RAISE EXCEPTION 'stream "%" has no column "%" for the key', p_stream, p_key_column
      USING ERRCODE = 'undefined_column';
  END IF;

  SELECT id, created_by INTO pid, acts_for FROM stream_ext_internal.kafka_producers
   WHERE stream = p_stream AND topic = p_topic FOR NO KEY UPDATE;
  IF FOUND THEN
    PERFORM stream_ext_internal.kafka_check_manager(p_stream, acts_for, p_role, true);
    -- its messages carry the columns of its staging view, made with it
    IF p_key_column IS NOT NULL AND NOT EXISTS (
         SELECT 1 FROM stream_ext_internal.kafka_producers p, pg_catalog.pg_attribute a
          WHERE p.id = pid AND a.attrelid = p.staging AND a.attname = p_key_column
            AND a.attnum > 0 AND NOT a.attisdropped) THEN
      RAISE EXCEPTION 'Kafka producer of stream "%" to topic "%" has no column "%" for the key',
                      p_stream, p_topic, p_key_column
        USING ERRCODE = 'undefined_column',
              DETAIL = 'A producer sends the stream''s columns as they were when it was created.',
              HINT = 'Drop the producer with stream_ext.kafka_drop_producer and create it again.';
    END IF;
    PERFORM stream_ext_internal.kafka_stop_workers(pid, true);
    UPDATE stream_ext_internal.kafka_producers
       SET brokers = p_brokers, format = p_format, format_options = p_format_options,
           key_column = p_key_column, options = p_options, enabled = true,
           created_by = p_role
     WHERE id = pid;
  ELSE
    PERFORM stream_ext_internal.kafka_lock_stream(p_stream);   -- a DROP waits for the row
    INSERT INTO stream_ext_internal.kafka_producers
      (stream, topic, brokers, format, format_options, key_column, options, created_by)
    VALUES (p_stream, p_topic, p_brokers, p_format, p_format_options, p_key_column,
            p_options, p_role)
    RETURNING id INTO pid;
    EXECUTE format('CREATE VIEW stream_ext_internal.%I WITH (continuous) AS SELECT %s FROM %s',
                   'kafka_sink_' || pid, stream_ext_internal.kafka_staging_columns(p_stream),
                   p_stream);
    UPDATE stream_ext_internal.kafka_producers
       SET staging = format('stream_ext_internal.%I', 'kafka_sink_' || pid)::regclass
     WHERE id = pid;
  END IF;
  -- the producer acts for the role that configured it last (kafka/rights.c):
  -- the staging view formats the events as that role, never as the extension
  EXECUTE format('ALTER VIEW %s OWNER TO %I',
                 (SELECT staging FROM stream_ext_internal.kafka_producers WHERE id = pid), p_role);
  PERFORM stream_ext_internal.kafka_ensure_supervisor();
  RETURN pid;
END
$$;

-- Waits until no writer stages events for producer p_id, and keeps new
-- writers from staging for it (they leave their events to the workers) until
-- the calling transaction ends (kafka/drop_lock.c).
CREATE FUNCTION stream_ext_internal.kafka_lock_producer_for_drop(p_id int) RETURNS void
  AS 'MODULE_PATHNAME', 'stream_ext_kafka_lock_producer_for_drop' LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION stream_ext_internal.kafka_lock_producer_for_drop(int) FROM PUBLIC;

-- Stops (p_action 'stop'), starts ('start') or drops ('drop': with its
-- staging view and outbox, events not yet produced included) a producer.
-- The producer's row is locked FOR NO KEY UPDATE (here and when kafka_produce
-- changes a producer): a writer that staged events for the producer holds it KEY
-- SHARE (the outbox's foreign key) until it commits, so stop, start and a change
-- need not wait for it; the drop's DELETE does, after the producer's lock has
-- turned new writers away (row locks do not queue; that lock does).
CREATE FUNCTION stream_ext_internal.kafka_control_producer(p_stream regclass, p_topic text,
                                                           p_action text)
  RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
  pid int;
  stg regclass;
  acts_for name;
  p_role name;
BEGIN
  p_role := stream_ext_internal.kafka_take_invoker();   -- first: a note is taken once
  PERFORM stream_ext_internal.kafka_check_caller(p_stream, session_user, true);
  SELECT id, staging, created_by INTO pid, stg, acts_for FROM stream_ext_internal.kafka_producers
   WHERE stream = p_stream AND topic = p_topic FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'stream "%" has no producer to topic "%"', p_stream, p_topic
      USING ERRCODE = 'undefined_object';
  END IF;
  PERFORM stream_ext_internal.kafka_check_manager(p_stream, acts_for, session_user, true);
  -- and the code that called (as in kafka_control)
  p_role := stream_ext_internal.kafka_acting_role(p_role);
  PERFORM stream_ext_internal.kafka_check_manager(p_stream, acts_for, p_role, true);
  PERFORM stream_ext_internal.kafka_stop_workers(pid, true);
  IF p_action = 'drop' THEN
    PERFORM stream_ext_internal.kafka_lock_producer_for_drop(pid);
    DELETE FROM stream_ext_internal.kafka_producers WHERE id = pid;
    IF stg IS NOT NULL THEN
      EXECUTE format('DROP VIEW %s', stg);
    END IF;
  ELSE
    UPDATE stream_ext_internal.kafka_producers SET enabled = (p_action = 'start') WHERE id = pid;
  END IF;
  PERFORM stream_ext_internal.kafka_ensure_supervisor();
END
$$;

REVOKE ALL ON FUNCTION stream_ext_internal.kafka_register_producer(regclass, text, text, text, name, jsonb, jsonb),
                       stream_ext_internal.kafka_control_producer(regclass, text, text),
                       stream_ext_internal.kafka_staging_columns(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stream_ext_internal.kafka_register_producer(regclass, text, text, text, name, jsonb, jsonb),
                          stream_ext_internal.kafka_control_producer(regclass, text, text) TO stream_ext_kafka;

CREATE FUNCTION stream_ext.kafka_produce(
    stream regclass, topic text, brokers text,
    format text DEFAULT 'json', key_column name DEFAULT NULL,
    options jsonb DEFAULT '{}', format_options jsonb DEFAULT '{}')
  RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  PERFORM stream_ext_internal.kafka_check_caller(stream, current_user, true);
  PERFORM stream_ext_internal.kafka_note_invoker();
  PERFORM stream_ext_internal.kafka_register_producer(stream, topic, brokers, format,
            key_column, options, format_options);
END
$$;

CREATE FUNCTION stream_ext.kafka_stop_producer(stream regclass, topic text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  PERFORM stream_ext_internal.kafka_check_caller(stream, current_user, true);
  PERFORM stream_ext_internal.kafka_note_invoker();
  PERFORM stream_ext_internal.kafka_control_producer(stream, topic, 'stop');
END
$$;

CREATE FUNCTION stream_ext.kafka_start_producer(stream regclass, topic text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  PERFORM stream_ext_internal.kafka_check_caller(stream, current_user, true);
  PERFORM stream_ext_internal.kafka_note_invoker();
  PERFORM stream_ext_internal.kafka_control_producer(stream, topic, 'start');
END
$$;

CREATE FUNCTION stream_ext.kafka_drop_producer(stream regclass, topic text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  PERFORM stream_ext_internal.kafka_check_caller(stream, current_user, true);
  PERFORM stream_ext_internal.kafka_note_invoker();
  PERFORM stream_ext_internal.kafka_control_producer(stream, topic, 'drop');
END
$$;

-- One field of a message a producer writes in csv (as COPY csv reads it back:
-- NULL is the null string, a value that could be mistaken is quoted) and in
-- text format (COPY text's backslash escapes).
-- (No SET search_path: they are inlined into the producer's statement, which
-- runs with search_path pg_catalog.)
CREATE FUNCTION stream_ext_internal.kafka_csv_field(v text, d text, q text, n text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN v IS NULL THEN n
              WHEN v = '' OR v = n OR strpos(v, d) > 0 OR strpos(v, q) > 0
                   OR strpos(v, E'\n') > 0 OR strpos(v, E'\r') > 0
              THEN q || replace(v, q, q || q) || q
              ELSE v END
$$;
CREATE FUNCTION stream_ext_internal.kafka_text_field(v text, d text, n text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN v IS NULL THEN n
              ELSE replace(replace(replace(replace(replace(v, E'\\', E'\\\\'),
                     E'\n', E'\\n'), E'\r', E'\\r'), E'\t', E'\\t'),
                     d, E'\\' || d) END
$$;
REVOKE ALL ON FUNCTION stream_ext_internal.kafka_csv_field(text, text, text, text),
                       stream_ext_internal.kafka_text_field(text, text, text) FROM PUBLIC;
-- a producer formats as the role it acts for, a member of stream_ext_kafka
GRANT EXECUTE ON FUNCTION stream_ext_internal.kafka_csv_field(text, text, text, text),
                          stream_ext_internal.kafka_text_field(text, text, text) TO stream_ext_kafka;

-- Events staged: committed to the stream (kept by the staging view, or still in
-- its deltas) or in the outbox (those of writers that committed), not yet
-- acknowledged by the brokers.  A count, public as the consumers' lag is; the
-- events themselves are not.
CREATE FUNCTION stream_ext_internal.kafka_producer_pending(p_id int) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
  stg regclass;
  n bigint;
BEGIN
  SELECT staging INTO stg FROM stream_ext_internal.kafka_producers WHERE id = p_id;
  IF stg IS NULL THEN
    RETURN NULL;
  END IF;
  EXECUTE format('SELECT count(*) FROM %s', stg) INTO n;
  RETURN n + (SELECT coalesce(sum(o.n), 0)
                FROM stream_ext_internal.kafka_outbox o
               WHERE o.producer_id = p_id
                 AND (o.writer_xid IS NULL OR stream_ext_internal.xid_committed(o.writer_xid)));
END
$$;

-- Messages a producer's brokers refused for good (larger than the topic or
-- the producer takes): set aside with their event number and key, their
-- message cut to stream_ext.kafka_error_payload_limit characters, so that
-- they never stall the sink (src/kafka/producer.c); the newest
-- stream_ext.kafka_max_errors of each producer.
CREATE TABLE stream_ext_internal.kafka_sink_errors (
  producer_id int NOT NULL REFERENCES stream_ext_internal.kafka_producers ON DELETE CASCADE,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  event       bigint NOT NULL,
  key         text,
  error       text NOT NULL,
  message     text
);
ALTER TABLE stream_ext_internal.kafka_sink_errors REPLICA IDENTITY FULL;
CREATE INDEX ON stream_ext_internal.kafka_sink_errors (producer_id, occurred_at);

CREATE VIEW stream_ext.kafka_producers AS
  SELECT p.stream, p.topic, p.brokers, p.format, p.key_column, p.enabled,
         CASE WHEN NOT p.enabled THEN 'stopped'
              WHEN s.pid IS NOT NULL THEN s.state
              WHEN s.last_error IS NOT NULL THEN 'retrying'
              WHEN s.consumer_id IS NULL AND stream_ext_internal.kafka_no_slot_error(0, 1) IS NOT NULL
                   THEN 'retrying'
              ELSE 'starting' END AS state,
         p.produced AS messages,
         stream_ext_internal.kafka_producer_pending(p.id) AS lag,
         p.errors,
         s.rate,
         CASE WHEN p.enabled AND s.consumer_id IS NULL THEN stream_ext_internal.kafka_no_slot_error(0, 1)
              ELSE s.last_error END AS last_error,
         s.last_error_at,
         stream_ext_internal.kafka_mask_options(p.options) AS options,
         p.format_options, p.staging
    FROM stream_ext_internal.kafka_producers p
    LEFT JOIN stream_ext_internal.kafka_worker_status() s
           ON s.consumer_id = p.id AND s.producer;
GRANT SELECT ON stream_ext.kafka_producers TO PUBLIC;

-- messages and keys are event contents (as in kafka_errors)
CREATE VIEW stream_ext.kafka_sink_errors WITH (security_barrier) AS
  SELECT p.stream, p.topic, e.event,
         CASE WHEN pg_catalog.has_table_privilege(p.stream, 'SELECT') THEN e.key END AS key,
         e.occurred_at,
         CASE WHEN pg_catalog.has_table_privilege(p.stream, 'SELECT') THEN e.error END AS error,
         CASE WHEN pg_catalog.has_table_privilege(p.stream, 'SELECT') THEN e.message END AS message
    FROM stream_ext_internal.kafka_sink_errors e
    JOIN stream_ext_internal.kafka_producers p ON p.id = e.producer_id
   WHERE pg_catalog.pg_has_role('stream_ext_kafka', 'MEMBER');
GRANT SELECT ON stream_ext.kafka_sink_errors TO PUBLIC;

-- Dropping a stream drops its consumers and producers (their workers stop
-- within a second); DROP ... CASCADE drops a producer's staging view with it.
CREATE FUNCTION stream_ext_internal.kafka_on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
  m record;
BEGIN
  -- a column a consumer maps, dropped with what its type depends on (DROP
  -- DOMAIN or EXTENSION ... CASCADE; ALTER ... DROP COLUMN is refused before,
  -- src/kafka/mapped_columns.c), while the stream stays
  SELECT c.id, c.topic, d.address_names[3] AS col, d.address_names[2] AS stream INTO m
    FROM pg_catalog.pg_event_trigger_dropped_objects() d
    JOIN stream_ext_internal.kafka_consumers c ON d.objid = c.stream::oid
   WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid > 0
     AND d.address_names[3] IN (c.key_column, c.partition_column, c.offset_column, c.timestamp_column)
     AND NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() t
                      WHERE t.classid = 'pg_catalog.pg_class'::regclass AND t.objid = d.objid
                        AND t.objsubid = 0)
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'cannot drop column "%" of stream "%"', m.col, m.stream
      USING ERRCODE = 'dependent_objects_still_exist',
            DETAIL = pg_catalog.format('Kafka consumer %s of topic "%s" writes into it.', m.id, m.topic),
            HINT = 'Call stream_ext.kafka_consume for the stream and topic again with another column first.';
  END IF;
  DELETE FROM stream_ext_internal.kafka_consumers c
   USING pg_catalog.pg_event_trigger_dropped_objects() d
   WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0
     AND d.objid = c.stream::oid;
  DELETE FROM stream_ext_internal.kafka_producers p
   USING pg_catalog.pg_event_trigger_dropped_objects() d
   WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0
     AND (d.objid = p.stream::oid OR d.objid = p.staging::oid);
END
$$;
CREATE EVENT TRIGGER stream_ext_kafka_sql_drop ON sql_drop
  EXECUTE FUNCTION stream_ext_internal.kafka_on_sql_drop();

-- pg_dump / pg_restore (src/ddl/restore.c).  pg_dump writes out the rows of
-- these tables and sequences with the database; the views, streams, state and
-- delta tables are ordinary relations it writes out anyway.  Rows that arrive
-- from another database (made_in differs) are adopted: a view's query is
-- analyzed again here; a Kafka consumer is restored stopped (kafka_start
-- resumes it from its restored offsets).
CREATE FUNCTION stream_ext_internal.adopt_restored_view() RETURNS trigger
  AS 'MODULE_PATHNAME', 'stream_ext_adopt_restored_view' LANGUAGE C;
CREATE TRIGGER adopt_restored BEFORE INSERT ON stream_ext_internal.continuous_views
  FOR EACH ROW WHEN (NEW.made_in IS DISTINCT FROM stream_ext_internal.catalog_origin())
  EXECUTE FUNCTION stream_ext_internal.adopt_restored_view();

CREATE FUNCTION stream_ext_internal.adopt_restored_consumer() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  NEW.enabled := false;
  NEW.made_in := stream_ext_internal.catalog_origin();
  RETURN NEW;
END
$$;
CREATE TRIGGER adopt_restored BEFORE INSERT ON stream_ext_internal.kafka_consumers
  FOR EACH ROW WHEN (NEW.made_in IS DISTINCT FROM stream_ext_internal.catalog_origin())
  EXECUTE FUNCTION stream_ext_internal.adopt_restored_consumer();
CREATE TRIGGER adopt_restored BEFORE INSERT ON stream_ext_internal.kafka_producers
  FOR EACH ROW WHEN (NEW.made_in IS DISTINCT FROM stream_ext_internal.catalog_origin())
  EXECUTE FUNCTION stream_ext_internal.adopt_restored_consumer();

-- A consumer or producer runs only in the database it was enabled in: a
-- copy made by CREATE DATABASE ... TEMPLATE holds its rows enabled, and its
-- supervisor stops them (src/kafka/supervisor.c) rather than read or write
-- the source's topics; kafka_start there enables them again, here.
CREATE FUNCTION stream_ext_internal.kafka_note_database() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  IF NEW.enabled THEN
    NEW.enabled_in := (SELECT d.oid FROM pg_catalog.pg_database d
                        WHERE d.datname = pg_catalog.current_database());
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER note_database BEFORE INSERT OR UPDATE OF enabled ON stream_ext_internal.kafka_consumers
  FOR EACH ROW EXECUTE FUNCTION stream_ext_internal.kafka_note_database();
CREATE TRIGGER note_database BEFORE INSERT OR UPDATE OF enabled ON stream_ext_internal.kafka_producers
  FOR EACH ROW EXECUTE FUNCTION stream_ext_internal.kafka_note_database();

-- A restored pending watermark has a restored writer (src/agg/writer_xact.c):
-- frozen, visible in pg_dump's snapshot, or invalid; several fold into one.
CREATE FUNCTION stream_ext_internal.adopt_restored_watermark() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  IF NEW.writer_xid::xid8 = '0'::xid8 THEN
    RETURN NULL;                -- its writer had not committed when dumped
  END IF;
  NEW.queued_writer := NULL;    -- the rings it waited for are not restored
  UPDATE stream_ext_internal.watermark_pending
     SET max_event_time = greatest(max_event_time, NEW.max_event_time),
         late_events = late_events + NEW.late_events
   WHERE view_id = NEW.view_id AND writer_xid = NEW.writer_xid;
  IF FOUND THEN
    RETURN NULL;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER adopt_restored BEFORE INSERT ON stream_ext_internal.watermark_pending
  FOR EACH ROW WHEN (NEW.writer_xid::xid8 < '3'::xid8)
  EXECUTE FUNCTION stream_ext_internal.adopt_restored_watermark();

REVOKE ALL ON FUNCTION stream_ext_internal.catalog_origin(),
                       stream_ext_internal.adopt_restored_view(),
                       stream_ext_internal.adopt_restored_consumer(),
                       stream_ext_internal.adopt_restored_watermark() FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.continuous_views', '');
SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.continuous_views_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.view_counters', '');
SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.view_watermarks', '');
SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.watermark_pending', '');
SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.late_events', '');
SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.view_errors', '');
SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.change_streams', '');
SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.kafka_consumers', '');
SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.kafka_consumers_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.kafka_offsets', '');
SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.kafka_errors', '');
SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.kafka_sink_errors', '');
SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.kafka_producers', '');
SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.kafka_producers_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.kafka_event_seq', '');
SELECT pg_catalog.pg_extension_config_dump('stream_ext_internal.kafka_outbox', '');

-- Default privileges (ALTER DEFAULT PRIVILEGES of the role that creates the
-- extension) apply to the relations made above: none but their owner keeps
-- a right on the extension's own tables and sequences (its catalog holds
-- Kafka credentials), and none but PUBLIC, granted SELECT above, on the
-- views of stream_ext.
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT c.oid::regclass AS rel,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END AS who
      FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
     WHERE a.grantee OPERATOR(pg_catalog.<>) c.relowner
       AND (c.relnamespace OPERATOR(pg_catalog.=) 'stream_ext_internal'::regnamespace
            OR c.relnamespace OPERATOR(pg_catalog.=) 'stream_ext'::regnamespace
               AND a.grantee OPERATOR(pg_catalog.<>) 0)
     GROUP BY 1, 2
  LOOP
    EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', r.rel, r.who);
  END LOOP;
END
$$;
