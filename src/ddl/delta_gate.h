/*
 * delta_gate.h
 *	  Reads of one group skip the delta table's scans when the group can
 *	  have no delta there.
 */
#ifndef STREAM_EXT_DELTA_GATE_H
#define STREAM_EXT_DELTA_GATE_H

extern void stream_delta_gate_init(void);

#endif
