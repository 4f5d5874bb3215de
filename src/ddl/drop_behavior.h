/*
 * drop_behavior.h
 *	  Whether the DROP being run cascades, for the drops it sets off.
 */
#ifndef STREAM_EXT_DROP_BEHAVIOR_H
#define STREAM_EXT_DROP_BEHAVIOR_H

#include "nodes/nodes.h"

extern bool stream_drop_behavior_begin(Node *parsetree, bool *saved);
extern void stream_drop_behavior_end(bool saved);

#endif
