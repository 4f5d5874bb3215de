/*
 * key_memo.h
 *	  Keys a read's own scan found without deltas, for the gates of the same
 *	  snapshot.
 */
#ifndef STREAM_EXT_KEY_MEMO_H
#define STREAM_EXT_KEY_MEMO_H

extern void stream_key_memo_note_absent(Oid delta, uint32 hash, int nkeys, const Oid *types,
										const Datum *keys, const int16 *typlen,
										const bool *typbyval);
extern bool stream_key_memo_absent(Oid delta, uint32 hash, int nkeys, const Oid *types,
								   const Datum *keys);

#endif
