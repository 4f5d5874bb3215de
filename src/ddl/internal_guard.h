/*
 * internal_guard.h
 *	  Refusing DDL on the extension's internal relations.
 */
#ifndef STREAM_EXT_INTERNAL_GUARD_H
#define STREAM_EXT_INTERNAL_GUARD_H

#include "nodes/nodes.h"

/* The links an ALTER TABLE may have made, to check once it ran */
typedef struct StreamLinkCheck
{
	Oid			relid;			/* the altered table; InvalidOid: none */
	bool		attaches;		/* ATTACH PARTITION */
	bool		inherits;		/* INHERIT */
	bool		references;		/* a foreign key */
} StreamLinkCheck;

extern StreamLinkCheck stream_guard_internal_relations(Node *parsetree);
extern void stream_guard_check_links(StreamLinkCheck check);

#endif
