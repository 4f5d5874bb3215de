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
  keep_late   boolean NOT NULL DEFAULT false
);

-- The name of a view's time column, which follows renames of the stream's columns.
CREATE FUNCTION stream_ext_internal.time_column(stream regclass, attnum int2) RETURNS text
  LANGUAGE sql STABLE AS
  $$SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum = $2$$;

-- Readable like pg_class: it holds what pg_views shows anyway.
GRANT SELECT ON stream_ext_internal.continuous_views TO PUBLIC;

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

-- The highest event time of the committed events of each event-time view, and
-- the events it refused as late.  Workers lock a view's row while they apply
-- a batch to it (src/window/lateness.c).
CREATE TABLE stream_ext_internal.view_watermarks (
  view_id        int PRIMARY KEY REFERENCES stream_ext_internal.continuous_views ON DELETE CASCADE,
  max_event_time timestamptz,
  late_events    bigint NOT NULL DEFAULT 0
);

-- The highest event time of each writer transaction whose events a view
-- applied; folded into view_watermarks once the writer has committed.
CREATE TABLE stream_ext_internal.watermark_pending (
  view_id        int NOT NULL REFERENCES stream_ext_internal.continuous_views ON DELETE CASCADE,
  writer_xid     xid8 NOT NULL,
  max_event_time timestamptz NOT NULL,
  PRIMARY KEY (view_id, writer_xid)
);

-- Late events of views with keep_late = true.
CREATE TABLE stream_ext_internal.late_events (
  view_id     int NOT NULL REFERENCES stream_ext_internal.continuous_views ON DELETE CASCADE,
  arrived_at  timestamptz NOT NULL DEFAULT now(),
  event_time  timestamptz,
  watermark   timestamptz NOT NULL,
  event       text NOT NULL
);
CREATE INDEX ON stream_ext_internal.late_events (view_id, arrived_at);

-- Events that a view's expressions failed on; the event was skipped for that view.
CREATE TABLE stream_ext_internal.view_errors (
  view_id     int NOT NULL REFERENCES stream_ext_internal.continuous_views ON DELETE CASCADE,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  sqlstate    text NOT NULL,
  message     text NOT NULL,
  event       text
);
CREATE INDEX ON stream_ext_internal.view_errors (view_id, occurred_at);

-- Aggregate state plumbing used by generated views and by the combiner.
CREATE FUNCTION stream_ext_internal.xid_visible(xid8) RETURNS boolean
  AS 'MODULE_PATHNAME', 'stream_ext_xid_visible' LANGUAGE C STRICT STABLE PARALLEL SAFE;
CREATE FUNCTION stream_ext_internal.event_xid8(xid) RETURNS xid8
  AS 'MODULE_PATHNAME', 'stream_ext_event_xid8' LANGUAGE C STRICT STABLE PARALLEL SAFE;
CREATE FUNCTION stream_ext_internal.xid_committed(xid8) RETURNS boolean
  AS 'MODULE_PATHNAME', 'stream_ext_xid_committed' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION stream_ext_internal.xid_aborted(xid8) RETURNS boolean
  AS 'MODULE_PATHNAME', 'stream_ext_xid_aborted' LANGUAGE C STRICT VOLATILE;

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

CREATE FUNCTION stream_ext_internal.finalize_agg_trans(internal, regprocedure, anyelement, anycompatible)
  RETURNS internal
  AS 'MODULE_PATHNAME', 'stream_ext_combine_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION stream_ext_internal.finalize_agg_final(internal, regprocedure, anyelement, anycompatible)
  RETURNS anycompatible
  AS 'MODULE_PATHNAME', 'stream_ext_finalize_agg_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE stream_ext_internal.finalize_agg(regprocedure, anyelement, anycompatible) (
  SFUNC = stream_ext_internal.finalize_agg_trans,
  STYPE = internal,
  SSPACE = 64,
  FINALFUNC = stream_ext_internal.finalize_agg_final,
  FINALFUNC_EXTRA
);

-- Notifies workers that the set of continuous views changed.
CREATE FUNCTION stream_ext_internal.catalog_changed() RETURNS void
  AS 'MODULE_PATHNAME', 'stream_ext_catalog_changed' LANGUAGE C VOLATILE;

-- User-facing API.
CREATE FUNCTION stream_ext.create_continuous_view(name text, query text,
                                                  options text[] DEFAULT '{}')
  RETURNS regclass
  AS 'MODULE_PATHNAME', 'stream_ext_create_continuous_view' LANGUAGE C STRICT VOLATILE;

-- "Now" for sliding windows, ttl and the reaper: stream_ext.read_time when set.
CREATE FUNCTION stream_ext.read_time() RETURNS timestamptz
  AS 'MODULE_PATHNAME', 'stream_ext_read_time' LANGUAGE C STABLE PARALLEL SAFE;

-- Bounds of a sliding window read (src/window/sliding.c), in the type of its time.
CREATE FUNCTION stream_ext_internal.sliding_bound(int, interval, interval, interval, anyelement)
  RETURNS anyelement
  AS 'MODULE_PATHNAME', 'stream_ext_sliding_bound' LANGUAGE C STABLE PARALLEL SAFE;

-- Delete a view's expired rows now (the combiner also does it in the background).
CREATE FUNCTION stream_ext.reap_expired(view regclass) RETURNS bigint
  AS 'MODULE_PATHNAME', 'stream_ext_reap_expired' LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION stream_ext.truncate_continuous_view(name regclass) RETURNS void
  AS 'MODULE_PATHNAME', 'stream_ext_truncate_continuous_view' LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION stream_ext_internal.query_definition(text) RETURNS text
  AS 'MODULE_PATHNAME', 'stream_ext_query_definition' LANGUAGE C STRICT STABLE;

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
         stream_ext_internal.query_definition(v.query) AS definition,
         v.state_table,
         nullif(v.window_kind, 'none') AS window_kind,
         coalesce(stream_ext_internal.time_column(v.stream, v.time_attnum),
                  'arrival_timestamp') AS time_column,
         v.window_size,
         v.window_step,
         v.ttl,
         v.ttl_column,
         v.allowed_lateness,
         v.keep_late
    FROM stream_ext_internal.continuous_views v;

CREATE VIEW stream_ext.view_stats AS
  SELECT v.view AS name,
         coalesce(sum(c.events), 0)::bigint AS events,
         coalesce(sum(c.batches), 0)::bigint AS batches,
         max(c.last_applied) AS last_applied,
         coalesce(sum(c.errors), 0)::bigint AS errors,
         w.late_events,
         greatest(w.max_event_time,
                  (SELECT max(p.max_event_time) FROM stream_ext_internal.watermark_pending p
                    WHERE p.view_id = v.id AND stream_ext_internal.xid_visible(p.writer_xid)))
           - v.allowed_lateness AS watermark
    FROM stream_ext_internal.continuous_views v
    LEFT JOIN stream_ext_internal.view_counters c ON c.view_id = v.id
    LEFT JOIN stream_ext_internal.view_watermarks w ON w.view_id = v.id
   GROUP BY v.id, v.view, w.late_events, w.max_event_time;

CREATE VIEW stream_ext.view_errors AS
  SELECT v.view AS name, e.occurred_at, e.sqlstate, e.message, e.event
    FROM stream_ext_internal.view_errors e
    JOIN stream_ext_internal.continuous_views v ON v.id = e.view_id
   WHERE pg_catalog.has_table_privilege(v.view, 'SELECT');  -- errors show event contents

CREATE VIEW stream_ext.late_events AS
  SELECT v.view AS name, l.arrived_at, l.event_time, l.watermark, l.event
    FROM stream_ext_internal.late_events l
    JOIN stream_ext_internal.continuous_views v ON v.id = l.view_id
   WHERE pg_catalog.has_table_privilege(v.view, 'SELECT');

GRANT SELECT ON stream_ext.streams, stream_ext.continuous_views,
                stream_ext.view_stats, stream_ext.view_errors,
                stream_ext.late_events TO PUBLIC;

-- DROP VIEW (or DROP ... CASCADE of a stream) removes the state behind a view.
CREATE FUNCTION stream_ext_internal.on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
  cv record;
  found boolean := false;
BEGIN
  FOR cv IN
    SELECT v.id
      FROM pg_catalog.pg_event_trigger_dropped_objects() d
      JOIN stream_ext_internal.continuous_views v ON v.view::oid = d.objid
     WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0
  LOOP
    found := true;
    DELETE FROM stream_ext_internal.continuous_views WHERE id = cv.id;
    EXECUTE format('DROP TABLE IF EXISTS stream_ext_internal.%I, stream_ext_internal.%I',
                   'state_' || cv.id, 'delta_' || cv.id);
  END LOOP;
  IF found THEN
    PERFORM stream_ext_internal.catalog_changed();
  END IF;
END
$$;
CREATE EVENT TRIGGER stream_ext_sql_drop ON sql_drop
  EXECUTE FUNCTION stream_ext_internal.on_sql_drop();
