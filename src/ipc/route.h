/*
 * route.h
 *	  Which of its database's batch workers a writer's records go to.
 */
#ifndef STREAM_EXT_ROUTE_H
#define STREAM_EXT_ROUTE_H

extern int	stream_route_first_record(void);
extern int	stream_route_next_record(int home_slot);
extern int	stream_worker_index(int slotno);
extern int	stream_worker_slot(int any_slot, int index);

#endif
