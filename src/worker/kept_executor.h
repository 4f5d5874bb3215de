/*
 * kept_executor.h
 *	  A view plan's executor, started once and rescanned for every batch.
 */
#ifndef STREAM_EXT_KEPT_EXECUTOR_H
#define STREAM_EXT_KEPT_EXECUTOR_H

#include "nodes/params.h"
#include "nodes/plannodes.h"
#include "tcop/dest.h"

typedef struct KeptExecutor KeptExecutor;

extern bool kept_executor_run(KeptExecutor **kept, PlannedStmt *plan, const char *source,
							  ParamListInfo params, DestReceiver *dest, int nevents);
extern void kept_executor_end(KeptExecutor **kept);

#endif
