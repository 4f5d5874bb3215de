/*
 * internal_guard.h
 *	  Refusing DDL on the extension's internal relations.
 */
#ifndef STREAM_EXT_INTERNAL_GUARD_H
#define STREAM_EXT_INTERNAL_GUARD_H

#include "nodes/nodes.h"

extern Oid	stream_guard_internal_relations(Node *parsetree);
extern void stream_guard_check_links(Oid relid, Node *parsetree);

#endif
