/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Bit-level UART codec shared by the softuart kernel module and its
 * user-space test harness. No kernel API in here: time is an s64 count of
 * nanoseconds on any monotonic clock, and the line is reached through
 * callbacks.
 *
 * Line levels are logical: 1 is mark (idle), 0 is space (start bit).
 */
#ifndef SOFTUART_CODEC_H
#define SOFTUART_CODEC_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <stdbool.h>
#include <stdint.h>
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef int64_t s64;
typedef uint64_t u64;
#endif

#define SUART_NEVER		((s64)(~0ULL >> 1))

enum suart_parity {
	SUART_PARITY_NONE = 0,
	SUART_PARITY_ODD = 1,
	SUART_PARITY_EVEN = 2,
};

/* Receive flags attached to a decoded character. */
#define SUART_FE		0x01	/* stop bit was space */
#define SUART_PE		0x02	/* parity mismatch */
#define SUART_BREAK		0x04	/* whole frame space, stop bit included */
#define SUART_NOISE		0x08	/* edges lost or too many to trust */

/* Longest frame: start + 8 data + parity + 2 stop. */
#define SUART_MAX_FRAME_BITS	12
#define SUART_MAX_EDGES		24

struct suart_fmt {
	u32 bit_ns;		/* one bit time in ns */
	u8 data_bits;		/* 5..8 */
	u8 parity;		/* enum suart_parity */
	u8 stop_bits;		/* 1 or 2 */
};

/* Fill @fmt from a baud rate and a frame shape; returns 0 or -1 if invalid. */
int suart_fmt_set(struct suart_fmt *fmt, u32 baud, u8 data_bits, u8 parity,
		  u8 stop_bits);
unsigned int suart_frame_bits(const struct suart_fmt *fmt);
/* The frame of @data as line levels, bit i = level during bit time i. */
u32 suart_encode(const struct suart_fmt *fmt, u8 data);

/* ---- transmitter: absolute deadlines, one timer expiry per line edge ---- */

enum suart_tx_state {
	SUART_TX_IDLE,		/* line high, nothing scheduled */
	SUART_TX_EDGE,		/* next edge of the current frame is due */
	SUART_TX_END,		/* frame ends at @due: load the next byte */
	SUART_TX_ABORT_END,	/* aborted frame: hold space until @due */
	SUART_TX_GAP,		/* mark for a frame after an abort */
	SUART_TX_BREAK,		/* holding space until break is released */
};

struct suart_tx_ops {
	/* Drive the line to @level; @when is the instant it was due. */
	void (*set_line)(void *ctx, int level, s64 when);
	/* Next byte to send, or -1 when there is none. */
	int (*next_byte)(void *ctx);
};

struct suart_tx {
	struct suart_fmt fmt;
	const struct suart_tx_ops *ops;
	void *ctx;
	bool exact;		/* line takes timestamped edges: lateness harmless */
	bool brk;		/* break requested */
	enum suart_tx_state state;
	u32 frame;
	u32 frame_bit_ns;	/* bit time of the current frame: a format change waits for the next */
	u8 nbits;
	u8 pos;			/* bit whose leading edge is due */
	u8 data;
	bool retried;		/* current byte is already a retry */
	s64 t_frame;		/* nominal start of the current frame */
	s64 due;		/* absolute deadline of the next action */
	s64 lat0;		/* lateness of the start edge */
	s64 lat_est;		/* running estimate of timer lateness */
	u32 late_aborts;	/* frames cut short because an edge ran late */
	u32 dropped;		/* bytes given up after a failed retry */
};

void suart_tx_init(struct suart_tx *tx, const struct suart_fmt *fmt,
		   const struct suart_tx_ops *ops, void *ctx, bool exact);
/* Back to idle, dropping any frame in progress; keeps format and counters. */
void suart_tx_reset(struct suart_tx *tx);
/*
 * Start sending if idle (or leave a break): the first edge is due at @when.
 * Returns the deadline to arm the timer for, or SUART_NEVER.
 */
s64 suart_tx_kick(struct suart_tx *tx, s64 when);
/* Run every action due at or before @now; returns the next deadline or SUART_NEVER. */
s64 suart_tx_run(struct suart_tx *tx, s64 now);
bool suart_tx_idle(const struct suart_tx *tx);
/* Largest edge lateness, relative to the start edge, a frame survives. */
s64 suart_tx_tolerance(const struct suart_fmt *fmt);

/* ---- receiver: decodes from edge timestamps ---- */

struct suart_char {
	u8 data;
	u8 flags;
};

/*
 * An interrupt that runs after the next edge has already happened reports the
 * line at the level it had before the first one: an edge pair (one pulse) was
 * lost. While every interrupt runs less than two bits late that pulse was one
 * bit long, and the decoder puts it back on the character's bit grid, if the
 * grid leaves exactly one place for it (see softuart_codec.c).
 *
 * t[]/lvl[] hold the frame's edges in order. An entry whose lvl has
 * SUART_RX_SYN set was rebuilt, not seen: its t is the bit index it sits on.
 */
#define SUART_RX_SYN		0x02

struct suart_rx {
	struct suart_fmt fmt;
	u32 floor_min_ns;	/* interrupt latency bounds: suart_rx_set_latency() */
	u32 floor_max_ns;
	u32 lat_max_ns;
	int level;		/* last level seen on the line */
	bool in_frame;
	bool missed;		/* an edge pair was lost in this frame */
	bool wait_mark;		/* line low after a frame: wait for a rising edge */
	bool syn_start;		/* start edge rebuilt from the stamp @t_syn */
	u8 n;
	s64 t_syn;		/* stamp of the report that hid the start edge */
	s64 t_prev;		/* stamp of the previous report, any kind */
	s64 t_char;		/* where the last decoded character's start bit began */
	s64 t_free;		/* no start bit before this, on the quick grid */
	s64 t[SUART_MAX_EDGES];
	u8 lvl[SUART_MAX_EDGES];
	u32 missed_edges;	/* edges reported with an unchanged level */
	u32 false_starts;	/* start bits shorter than half a bit */
	u32 recovered;		/* lost edge pairs put back on the bit grid */
};

void suart_rx_init(struct suart_rx *rx, const struct suart_fmt *fmt, int level);
/* New format, decoder restarted; keeps the counters and the latency bounds. */
void suart_rx_set_fmt(struct suart_rx *rx, const struct suart_fmt *fmt, int level);
/*
 * How late, in ns, the handler that stamps an edge runs: the quickest of a
 * character's handlers between @floor_min_ns and @floor_max_ns, none later
 * than @max_ns. The decoder needs this to put back an edge pair lost to a
 * late interrupt (see softuart_codec.c). Returns -1 unless floor_min <=
 * floor_max <= max. Pairs are put back only at rates where @max_ns lies
 * between one bit time and two: below, no pair can be lost within the
 * bounds; above, a lost pair can no longer be placed. Characters that lose
 * one are then flagged SUART_NOISE, as are those where it does not fit.
 */
int suart_rx_set_latency(struct suart_rx *rx, u32 floor_min_ns, u32 floor_max_ns,
			 u32 max_ns);
#define SUART_RX_FLOOR_MIN_NS	8000
#define SUART_RX_FLOOR_MAX_NS	12000
#define SUART_RX_LAT_MAX_NS	25000

/*
 * Feed one edge: the line was seen at @level at time @t (timestamps must not
 * decrease). Returns 1 and fills @out when this edge completes a character.
 */
int suart_rx_edge(struct suart_rx *rx, s64 t, int level, struct suart_char *out);
/* Instant after which the current character can be decoded, or SUART_NEVER. */
s64 suart_rx_deadline(const struct suart_rx *rx);
/* Decode the current character if @now is past its deadline; returns 1 if so. */
int suart_rx_timeout(struct suart_rx *rx, s64 now, struct suart_char *out);

#endif /* SOFTUART_CODEC_H */
