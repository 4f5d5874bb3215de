--
-- kafka_sink: the SQL API of Kafka producers (no broker needed: the brokers
-- given do not answer, so the workers only retry)
--
CREATE FOREIGN TABLE ks_s (url text, n int, at timestamptz) SERVER stream_ext;
CREATE TABLE ks_table (url text);
CREATE ROLE regress_ks_outsider;
CREATE ROLE regress_ks_member IN ROLE stream_ext_kafka;
GRANT USAGE ON SCHEMA public TO regress_ks_outsider, regress_ks_member;

-- arguments
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', format => 'xml');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', key_column => 'nope');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', key_column => 'arrival_timestamp');
SELECT stream_ext.kafka_produce('ks_table', 'out', '127.0.0.1:9');
SELECT stream_ext.kafka_produce('ks_s', '', '127.0.0.1:9');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', options => '[1]');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', format => 'csv',
                                format_options => '{"header": true}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', format => 'csv',
                                format_options => '{"delimiter": ";;"}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', format => 'text',
                                format_options => '{"quote": "é"}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', format => 'csv',
                                format_options => '{"delimiter": "\n"}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', format => 'csv',
                                format_options => '{"delimiter": "|", "quote": "|"}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', format => 'csv',
                                format_options => '{"quote": ","}');
-- a consumer's format options likewise (checked before anything is started)
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', format => 'csv',
                                format_options => '{"delimiter": "é"}');
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', format => 'text',
                                format_options => '{"escape": ""}');
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', format => 'csv',
                                format_options => '{"header": "maybe"}');
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', format => 'csv',
                                format_options => '{"quote": ";", "delimiter": ";"}');
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', format => 'text',
                                format_options => '{"delimiter": "n"}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', format => 'csv',
                                format_options => '{"null": "x,y"}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', format => 'text',
                                format_options => '{"null": "a\tb"}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', format => 'csv',
                                format_options => '{"null": "\"\""}');
-- librdkafka options are tried when given, not first by the worker
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', options => '{"no.such.option": "1"}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', options => '{"linger.ms": "soon"}');
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', options => '{"fetch.max.bytes": -5}');
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', options => '{"linger.ms": null}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', options => '{"acks": ["all"]}');
-- options the workers set themselves or depend on are refused, superusers
-- included: a signal of the server's process; a producer's idempotence and
-- delivery reports; a consumer's offsets and group
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', options => '{"internal.termination.signal": 15}');
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', options => '{"internal.termination.signal": "10"}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', options => '{"acks": "1"}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', options => '{"delivery.report.only.error": true}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', options => '{"transactional.id": "t"}');
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', options => '{"enable.auto.commit": true}');
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', options => '{"group.id": "other"}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', options => '{"linger.ms": 30000}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', options => '{"linger.ms": 100, "message.timeout.ms": 50}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9',
                                options => '{"message.timeout.ms": 60000, "delivery.timeout.ms": 1}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9',
                                options => '{"linger.ms": 5, "queue.buffering.max.ms": 60000}');
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9',
                                options => '{"partition.assignment.strategy": "cooperative-sticky"}');
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', options => '{"group.instance.id": "a"}');
-- librdkafka's hidden test options (this one takes the string's address as a
-- function to call) are refused, superusers included
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', options => '{"ut_handle_ProduceResponse": "AAAAAAAA"}');
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', options => '{"Property": "x"}');
-- NULL arguments, an infinite start, a column mapped twice
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', format => NULL);
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', options => NULL);
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', format_options => NULL);
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', start => 'infinity');
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', start => '-infinity');
SELECT stream_ext.kafka_consume('ks_s', 'in', '127.0.0.1:9', key_column => 'url',
                                timestamp_column => 'at', partition_column => 'url');
SELECT count(*) AS consumers FROM stream_ext_internal.kafka_consumers;
SELECT count(*) AS producers FROM stream_ext_internal.kafka_producers;

-- privileges: members of stream_ext_kafka with SELECT on the stream
SET ROLE regress_ks_outsider;
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9');
SELECT stream_ext_internal.kafka_register_producer('ks_s', 'out', '127.0.0.1:9', 'json',
                                                   NULL, '{}', '{}');
SET ROLE regress_ks_member;
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9');
RESET ROLE;
GRANT SELECT ON ks_s TO regress_ks_member;
SET ROLE regress_ks_member;
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', key_column => 'url',
                                options => '{"sasl.password": "secret", "linger.ms": "1"}');
SELECT stream, topic, format, key_column, enabled, options, staging
  FROM stream_ext.kafka_producers;
-- librdkafka's debugging output floods the server log: superusers only
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', options => '{"debug": "all"}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', options => '{"log_level": 7}');
-- nor may others authenticate with the server's Kerberos credentials
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9',
                                options => '{"security.protocol": "sasl_plaintext", "sasl.mechanisms": "GSSAPI"}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9',
                                options => '{"security.protocol": "SASL_SSL", "sasl.mechanism": "gssapi"}');
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', options => '{"security.protocol": "sasl_ssl"}');
-- a producer of the same topic changes its settings and keeps its staging view
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', format => 'csv',
                                format_options => '{"delimiter": ";"}');
SELECT format, key_column, format_options, staging FROM stream_ext.kafka_producers;
-- its columns are the stream's at its creation: a key column added since is refused
RESET ROLE;
ALTER FOREIGN TABLE ks_s ADD COLUMN ks_later text;
SET ROLE regress_ks_member;
SELECT stream_ext.kafka_produce('ks_s', 'out', '127.0.0.1:9', key_column => 'ks_later');
RESET ROLE;
ALTER FOREIGN TABLE ks_s DROP COLUMN ks_later;
SET ROLE regress_ks_member;
-- the staging view (or the outbox) keeps the stream's committed events until
-- they are sent: the lag counts them
RESET ROLE;
INSERT INTO ks_s VALUES ('/a', 1, '2024-01-01 00:00:00+00');
BEGIN;
INSERT INTO ks_s VALUES ('/rolled-back', 2, '2024-01-01 00:00:00+00');
ROLLBACK;
SELECT topic, lag FROM stream_ext.kafka_producers;
SET ROLE regress_ks_member;
SELECT stream_ext.kafka_stop_producer('ks_s', 'out');
SELECT state, enabled FROM stream_ext.kafka_producers;
SELECT stream_ext.kafka_start_producer('ks_s', 'out');
SELECT enabled FROM stream_ext.kafka_producers;
SELECT stream_ext.kafka_stop_producer('ks_s', 'other');
-- anyone sees the producers (options masked), but not their staged events
SET ROLE regress_ks_outsider;
SELECT topic, lag, options FROM stream_ext.kafka_producers;
SELECT count(*) FROM stream_ext_internal.kafka_outbox;
SELECT stream_ext.kafka_drop_producer('ks_s', 'out');
SET ROLE regress_ks_member;
SELECT stream_ext.kafka_drop_producer('ks_s', 'out');
RESET ROLE;
SELECT count(*) AS producers FROM stream_ext_internal.kafka_producers;
SELECT to_regclass('stream_ext_internal.kafka_sink_1') AS staging_view;

-- how fields are written: csv quotes what COPY would misread, text escapes
SELECT stream_ext_internal.kafka_csv_field(v, ',', '"', '') AS csv,
       stream_ext_internal.kafka_text_field(v, E'\t', '\N') AS text
  FROM (VALUES ('plain'), (''), (NULL), ('a,b'), ('say "hi"'), (E'two\nlines'),
               (E'tab\there'), (E'back\\slash')) v(v);

-- a column a consumer maps keeps its name: renaming or dropping it is refused
-- (the consumer would fail every batch), other columns are not held; after
-- kafka_consume maps another column, the old one is free
CREATE FOREIGN TABLE ks_in (k text, p int, o bigint, "Ts" timestamptz, body text) SERVER stream_ext;
SELECT stream_ext.kafka_consume('ks_in', 'in', '127.0.0.1:9', key_column => 'k',
                                partition_column => 'p', offset_column => 'o',
                                timestamp_column => 'Ts');
SELECT stream_ext.kafka_stop('ks_in', 'in');
ALTER FOREIGN TABLE ks_in RENAME COLUMN k TO key;
ALTER TABLE ks_in RENAME COLUMN "Ts" TO ts;
ALTER FOREIGN TABLE ks_in DROP COLUMN p;
ALTER FOREIGN TABLE ks_in ADD COLUMN extra int, DROP COLUMN o CASCADE;
ALTER TYPE ks_in RENAME ATTRIBUTE k TO key;
ALTER FOREIGN TABLE ks_in RENAME COLUMN body TO payload;
ALTER FOREIGN TABLE ks_in DROP COLUMN payload;
-- nor dropped with what its type depends on
CREATE DOMAIN ks_offset AS bigint;
ALTER FOREIGN TABLE ks_in ADD COLUMN o2 ks_offset;
SELECT stream_ext.kafka_consume('ks_in', 'in', '127.0.0.1:9', key_column => 'k',
                                partition_column => 'p', offset_column => 'o2',
                                timestamp_column => 'Ts');
SELECT stream_ext.kafka_stop('ks_in', 'in');
DROP DOMAIN ks_offset CASCADE;
SELECT stream_ext.kafka_consume('ks_in', 'in', '127.0.0.1:9', key_column => 'k',
                                partition_column => 'p', offset_column => 'o',
                                timestamp_column => 'Ts');
SELECT stream_ext.kafka_stop('ks_in', 'in');
DROP DOMAIN ks_offset CASCADE;
SELECT stream_ext.kafka_consume('ks_in', 'in', '127.0.0.1:9', key_column => 'k');
SELECT stream_ext.kafka_stop('ks_in', 'in');
-- a start time is the instant meant in the caller's TimeZone (the workers
-- read it in theirs), an object is stored as jsonb writes it, a time before
-- any Kafka timestamp is the earliest
SET TimeZone = 'Asia/Tokyo';
SELECT stream_ext.kafka_consume('ks_in', 'in_t', '127.0.0.1:9', start => '2030-01-01 09:00');
RESET TimeZone;
SELECT stream_ext.kafka_stop('ks_in', 'in_t');
SELECT stream_ext.kafka_consume('ks_in', 'in_j', '127.0.0.1:9', start => ' {"0": 5}');
SELECT stream_ext.kafka_stop('ks_in', 'in_j');
SELECT stream_ext.kafka_consume('ks_in', 'in_e', '127.0.0.1:9', start => '1969-12-31');
SELECT stream_ext.kafka_stop('ks_in', 'in_e');
SELECT topic, start FROM stream_ext_internal.kafka_consumers WHERE topic LIKE 'in\_%' ORDER BY topic;
ALTER FOREIGN TABLE ks_in RENAME COLUMN "Ts" TO ts;
ALTER FOREIGN TABLE ks_in DROP COLUMN p;
ALTER FOREIGN TABLE ks_in RENAME COLUMN k TO key;
SELECT attname FROM pg_attribute WHERE attrelid = 'ks_in'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;
DROP FOREIGN TABLE ks_in;
SELECT count(*) AS consumers FROM stream_ext_internal.kafka_consumers;

-- dropping the stream (CASCADE: the staging view depends on it) drops its producers
SELECT stream_ext.kafka_produce('ks_s', 'again', '127.0.0.1:9');
DROP FOREIGN TABLE ks_s;
DROP FOREIGN TABLE ks_s CASCADE;
SELECT count(*) AS producers FROM stream_ext_internal.kafka_producers;

DROP TABLE ks_table;
REVOKE USAGE ON SCHEMA public FROM regress_ks_outsider, regress_ks_member;
DROP ROLE regress_ks_outsider;
DROP ROLE regress_ks_member;
