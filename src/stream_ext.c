/*
 * stream_ext.c
 *	  Module entry point: configuration, shared memory, hooks, launcher.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"

#include "agg/inputs.h"
#include "analyze/table_copies.h"
#include "ddl/delta_writes.h"
#include "ddl/delta_gate.h"
#include "ddl/read_estimates.h"
#include "ddl/rollup.h"
#include "ddl/utility.h"
#include "guc.h"
#include "ipc/pending_keys.h"
#include "ipc/queue.h"
#include "kafka/backpressure.h"
#include "kafka/mapped_columns.h"
#include "kafka/kafka_guc.h"
#include "kafka/sink_stage.h"
#include "kafka/slots.h"
#include "kafka/outbox_settle.h"
#include "kafka/supervisor.h"
#include "metrics/latency.h"
#include "metrics/view_rates.h"
#include "stream/insert.h"
#include "stream/read_guard.h"
#include "window/lateness.h"
#include "window/reaper.h"
#include "worker/change_events.h"
#include "worker/held_back.h"
#include "worker/writer_apply.h"
#include "worker/worker.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
stream_ext_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	stream_shmem_request();
	stream_view_rates_shmem_request();
	stream_latency_shmem_request();
	kafka_shmem_request();
	stream_pending_keys_shmem_request();
}

static void
stream_ext_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	stream_shmem_startup();
	stream_view_rates_shmem_startup();
	stream_latency_shmem_startup();
	kafka_shmem_startup();
	stream_pending_keys_shmem_startup();
}

void
_PG_init(void)
{
	/*
	 * Without preloading there is no shared memory and no worker; the
	 * install script refuses to run then, with a hint.
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;
	stream_ext_preloaded = true;

	stream_kafka_define_gucs();
	stream_ext_define_gucs();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = stream_ext_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = stream_ext_shmem_startup;

	stream_utility_init();
	stream_insert_init();
	stream_read_guard_init();
	stream_read_estimates_init();
	stream_delta_gate_init();
	stream_rollup_init();
	stream_delta_writes_init();
	stream_inputs_final_init();
	stream_table_copies_init();
	stream_reaper_init();
	stream_lateness_settle_init();
	stream_change_events_init();
	stream_held_back_init();
	stream_writer_apply_init();
	kafka_sink_stage_init();	/* chains writer_apply.c's hooks */
	kafka_supervisor_init();
	kafka_outbox_settle_init();
	kafka_backpressure_init();
	kafka_mapped_columns_init();
	stream_register_launcher();
}
