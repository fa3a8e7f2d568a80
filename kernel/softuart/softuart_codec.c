// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Bit-level UART codec: frame encoder, deadline-driven transmitter and
 * edge-timestamp receiver. Built both into the kernel module and into a
 * user-space shared library for the tests, so it uses no kernel API.
 */
#include "softuart_codec.h"

#ifdef __KERNEL__
#include <linux/math64.h>
#define suart_div(a, b)	div_s64((a), (b))
#else
#define suart_div(a, b)	((a) / (s64)(b))
#endif

/* An edge may come 3/8 of a bit early, and 5/8 late: latency only delays. */
#define SUART_EARLY_NUM	3
#define SUART_EARLY_DEN	8

int suart_fmt_set(struct suart_fmt *fmt, u32 baud, u8 data_bits, u8 parity,
		  u8 stop_bits)
{
	if (baud < 50 || baud > 1000000 || data_bits < 5 || data_bits > 8 ||
	    parity > SUART_PARITY_EVEN || stop_bits < 1 || stop_bits > 2)
		return -1;
	fmt->bit_ns = (1000000000u + baud / 2) / baud;
	fmt->data_bits = data_bits;
	fmt->parity = parity;
	fmt->stop_bits = stop_bits;
	return 0;
}

unsigned int suart_frame_bits(const struct suart_fmt *fmt)
{
	return 1u + fmt->data_bits + (fmt->parity ? 1u : 0u) + fmt->stop_bits;
}

static unsigned int suart_ones(u32 v)
{
	unsigned int n = 0;

	for (; v; v &= v - 1)
		n++;
	return n;
}

static u32 suart_parity_bit(const struct suart_fmt *fmt, u32 data)
{
	u32 odd = suart_ones(data) & 1u;

	return fmt->parity == SUART_PARITY_EVEN ? odd : odd ^ 1u;
}

u32 suart_encode(const struct suart_fmt *fmt, u8 data)
{
	u32 d = data & ((1u << fmt->data_bits) - 1u);
	u32 frame = d << 1;		/* bit 0: start bit, space */
	unsigned int pos = 1u + fmt->data_bits;

	if (fmt->parity)
		frame |= suart_parity_bit(fmt, d) << pos++;
	frame |= ((1u << fmt->stop_bits) - 1u) << pos;
	return frame;
}

/* ---------------------------------------------------------------- TX --- */

/* Keep in step with the check in suart_tx_edge(). */
s64 suart_tx_tolerance(const struct suart_fmt *fmt)
{
	return (s64)fmt->bit_ns * 3 / 8;
}

void suart_tx_init(struct suart_tx *tx, const struct suart_fmt *fmt,
		   const struct suart_tx_ops *ops, void *ctx, bool exact)
{
	*tx = (struct suart_tx){ .fmt = *fmt, .ops = ops, .ctx = ctx,
				 .exact = exact, .state = SUART_TX_IDLE,
				 .due = SUART_NEVER };
}

void suart_tx_reset(struct suart_tx *tx)
{
	tx->state = SUART_TX_IDLE;
	tx->due = SUART_NEVER;
	tx->brk = false;
}

bool suart_tx_idle(const struct suart_tx *tx)
{
	return tx->state == SUART_TX_IDLE;
}

static void suart_tx_load(struct suart_tx *tx, u8 data)
{
	tx->data = data;
	tx->frame = suart_encode(&tx->fmt, data);
	tx->nbits = (u8)suart_frame_bits(&tx->fmt);
	tx->frame_bit_ns = tx->fmt.bit_ns;
	tx->pos = 0;
	tx->t_frame = tx->due;
	tx->state = SUART_TX_EDGE;
}

s64 suart_tx_kick(struct suart_tx *tx, s64 when)
{
	if (tx->state == SUART_TX_IDLE) {
		tx->state = SUART_TX_END;
		tx->due = when;
		tx->retried = true;	/* nothing to retry */
	} else if (tx->state == SUART_TX_BREAK && !tx->brk) {
		tx->ops->set_line(tx->ctx, 1, when);
		tx->state = SUART_TX_END;
		tx->due = when + tx->fmt.bit_ns;
		tx->retried = true;
	}
	return tx->state == SUART_TX_BREAK ? SUART_NEVER : tx->due;
}

/* A frame edge is due: drive it, or cut the frame if it came too late. */
static void suart_tx_edge(struct suart_tx *tx, s64 now, s64 when)
{
	const s64 bit = tx->frame_bit_ns;
	s64 late = now - tx->due;
	int level;
	u8 p;

	if (tx->exact) {
		tx->lat0 = 0;
	} else if (tx->pos == 0) {
		/*
		 * Later edges are timed from the start edge's deadline. If that
		 * is a bit or more behind, they would bunch up: start the frame
		 * afresh instead, which only lengthens the idle time before it.
		 */
		if (late >= bit) {
			tx->t_frame += late - tx->lat_est;
			tx->due = tx->t_frame;
			late = tx->lat_est;
		}
		tx->lat0 = late;
	} else {
		s64 rel = late - tx->lat0;

		tx->lat_est += (late - tx->lat_est) / 8;
		if (rel > bit * 3 / 8 || rel < -bit * 3 / 8) {
			/*
			 * The bit before this edge was stretched. Hold space
			 * through the stop bits so the receiver flags a framing
			 * error instead of taking a wrong byte, then resend. If
			 * the whole frame has gone by meanwhile it is too late
			 * for that: just go back to mark, wait a frame, resend.
			 */
			s64 end = tx->t_frame + (s64)tx->nbits * bit;

			tx->late_aborts++;
			if (end > now) {
				tx->ops->set_line(tx->ctx, 0, when);
				tx->state = SUART_TX_ABORT_END;
				tx->due = end;
			} else {
				tx->ops->set_line(tx->ctx, 1, when);
				tx->state = SUART_TX_GAP;
				tx->due = now + (s64)tx->nbits * bit;
			}
			return;
		}
	}

	level = (tx->frame >> tx->pos) & 1;
	tx->ops->set_line(tx->ctx, level, when);
	for (p = tx->pos + 1; p < tx->nbits; p++)
		if ((int)((tx->frame >> p) & 1) != level)
			break;
	if (p < tx->nbits) {
		tx->pos = p;
		tx->due = tx->t_frame + (s64)p * bit;
	} else {
		tx->state = SUART_TX_END;
		tx->due = tx->t_frame + (s64)tx->nbits * bit;
	}
}

s64 suart_tx_run(struct suart_tx *tx, s64 now)
{
	for (;;) {
		s64 when;
		int c;

		if (tx->state == SUART_TX_IDLE || tx->state == SUART_TX_BREAK)
			return SUART_NEVER;
		if (tx->due > now)
			return tx->due;
		when = tx->exact ? tx->due : now;

		switch (tx->state) {
		case SUART_TX_EDGE:
			suart_tx_edge(tx, now, when);
			break;
		case SUART_TX_ABORT_END:
			tx->ops->set_line(tx->ctx, 1, when);
			tx->state = SUART_TX_GAP;
			tx->due += (s64)tx->nbits * tx->frame_bit_ns;
			break;
		case SUART_TX_END:
		case SUART_TX_GAP:
			if (tx->brk) {
				tx->ops->set_line(tx->ctx, 0, when);
				tx->state = SUART_TX_BREAK;
				break;
			}
			if (tx->state == SUART_TX_GAP && !tx->retried) {
				tx->retried = true;
				suart_tx_load(tx, tx->data);
				break;
			}
			if (tx->state == SUART_TX_GAP)
				tx->dropped++;
			c = tx->ops->next_byte(tx->ctx);
			if (c < 0) {
				tx->state = SUART_TX_IDLE;
				tx->due = SUART_NEVER;
				break;
			}
			tx->retried = false;
			suart_tx_load(tx, (u8)c);
			break;
		default:
			return SUART_NEVER;
		}
	}
}

/* ---------------------------------------------------------------- RX --- */

void suart_rx_init(struct suart_rx *rx, const struct suart_fmt *fmt, int level)
{
	*rx = (struct suart_rx){ .fmt = *fmt, .level = level ? 1 : 0,
				 .wait_mark = !level };
}

void suart_rx_set_fmt(struct suart_rx *rx, const struct suart_fmt *fmt, int level)
{
	u32 missed = rx->missed_edges, false_starts = rx->false_starts;

	suart_rx_init(rx, fmt, level);
	rx->missed_edges = missed;
	rx->false_starts = false_starts;
}

/* Index of the bit boundary an edge at offset @off from the reference is on. */
static s64 suart_rx_slot(const struct suart_rx *rx, s64 off)
{
	const s64 bit = rx->fmt.bit_ns;

	off += bit * SUART_EARLY_NUM / SUART_EARLY_DEN;
	if (off < 0)
		return -1;
	return suart_div(off, rx->fmt.bit_ns);
}

/*
 * Where bit 0 began, as the median of the instants the frame's edges imply
 * (each edge minus its whole number of bits from the start edge). A start
 * edge stamped late by a slow interrupt then no longer drags every later
 * bit boundary with it; latency never makes a stamp early, so the reference
 * is not allowed to land more than a quarter bit after the start edge.
 */
static s64 suart_rx_ref(const struct suart_rx *rx)
{
	const s64 bit = rx->fmt.bit_ns;
	s64 imp[SUART_MAX_EDGES], med;
	unsigned int i, j;

	for (i = 0; i < rx->n; i++) {
		s64 off = rx->t[i] - rx->t[0];
		s64 v = off - suart_div(off + bit / 2, rx->fmt.bit_ns) * bit;

		for (j = i; j > 0 && imp[j - 1] > v; j--)
			imp[j] = imp[j - 1];
		imp[j] = v;
	}
	med = imp[(rx->n - 1) / 2];
	if (med > bit / 4)
		med -= bit;
	return rx->t[0] + med;
}

static int suart_rx_finish(struct suart_rx *rx, struct suart_char *out)
{
	const unsigned int nbits = suart_frame_bits(&rx->fmt);
	const unsigned int db = rx->fmt.data_bits;
	u32 levels = 0, data, stop_mask;
	s64 ref = suart_rx_ref(rx);
	unsigned int b, i = 1, cur = 0, pbit;
	u8 flags = 0;

	for (b = 0; b < nbits; b++) {
		while (i < rx->n && suart_rx_slot(rx, rx->t[i] - ref) <= b)
			cur = rx->lvl[i++];
		levels |= (u32)cur << b;
	}
	rx->in_frame = false;
	rx->wait_mark = !rx->level;
	if (levels & 1u) {
		/* Line back at mark before the middle of the start bit: a glitch. */
		rx->false_starts++;
		return 0;
	}
	data = (levels >> 1) & ((1u << db) - 1u);
	pbit = 1u + db;
	stop_mask = ((1u << rx->fmt.stop_bits) - 1u)
		    << (pbit + (rx->fmt.parity ? 1u : 0u));
	if (rx->fmt.parity &&
	    ((levels >> pbit) & 1u) != suart_parity_bit(&rx->fmt, data))
		flags |= SUART_PE;
	if ((levels & stop_mask) != stop_mask)
		flags |= SUART_FE;
	if (levels == 0)
		flags = SUART_BREAK | SUART_FE;
	if (rx->missed)
		flags |= SUART_NOISE | SUART_FE;
	out->data = (u8)data;
	out->flags = flags;
	return 1;
}

s64 suart_rx_deadline(const struct suart_rx *rx)
{
	const s64 bit = rx->fmt.bit_ns;

	if (!rx->in_frame)
		return SUART_NEVER;
	return rx->t[0] + (s64)suart_frame_bits(&rx->fmt) * bit + bit / 2;
}

int suart_rx_timeout(struct suart_rx *rx, s64 now, struct suart_char *out)
{
	if (!rx->in_frame || now < suart_rx_deadline(rx))
		return 0;
	return suart_rx_finish(rx, out);
}

int suart_rx_edge(struct suart_rx *rx, s64 t, int level, struct suart_char *out)
{
	int done = 0;

	level = level ? 1 : 0;
	if (rx->in_frame) {
		s64 slot = suart_rx_slot(rx, t - suart_rx_ref(rx));

		if (slot >= (s64)suart_frame_bits(&rx->fmt))
			done = suart_rx_finish(rx, out);
	}
	if (level == rx->level) {
		/*
		 * Two edges merged into one interrupt. Inside a frame the bits
		 * are lost; outside one, mark then space again is a start bit
		 * (the stamp is only as late as the first edge's latency).
		 */
		rx->missed_edges++;
		if (rx->in_frame) {
			rx->missed = true;
			return done;
		}
		if (level != 0)
			return done;
		rx->wait_mark = false;
	}
	rx->level = level;
	if (rx->in_frame) {
		if (rx->n < SUART_MAX_EDGES) {
			rx->t[rx->n] = t;
			rx->lvl[rx->n++] = (u8)level;
		} else {
			rx->missed = true;
		}
	} else if (level == 0 && !rx->wait_mark) {
		rx->in_frame = true;
		rx->missed = false;
		rx->n = 1;
		rx->t[0] = t;
		rx->lvl[0] = 0;
	} else if (level == 1) {
		rx->wait_mark = false;
	}
	return done;
}
