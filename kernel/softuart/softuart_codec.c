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

/*
 * Lost edge pairs. The GPIO block latches one event per line: when the next
 * edge comes before the handler of the first has run, the handler runs once
 * and reads the line back at the level it had before both. Say the handler
 * stamped h, and the lost pulse began at e1 and ended at e2. Its interrupt
 * ran at h, so e2 <= h and its latency lat1 = h - e1 is at least the pulse
 * length. While every latency stays under two bits the pulse was exactly
 * one bit long (a longer one would have let the handler run in between) and
 * no other edge fits in between.
 *
 * Where on the grid? The stamps give the bit grid only up to the latency all
 * interrupts share: the grid through the character's quickest stamp ("quick"
 * below) lies lat_f after the true one, lat_f being that quickest interrupt's
 * latency, and h lies d = lat1 - lat_f after the quick grid point where the
 * pulse began. The receiver is told (suart_rx_set_latency) that the quickest
 * interrupt of a character runs between floor_min and floor_max after its
 * edge, and that none runs later than lat_max. With the frame's other stamps
 * up to s later than its quickest one, lat_f is also at most lat_max - s;
 * lat1 is between bit and lat_max, so
 *
 *	bit - min(floor_max, lat_max - s) <= d <= lat_max - floor_min.
 *
 * The pulse is put back only if exactly one grid point satisfies that, and
 * only where it fits: after the frame's last edge, and after the previous
 * report (its first edge would have merged into that one); a real edge then
 * landing on or before its end flags the frame. Otherwise the character is
 * flagged as before, never guessed. A lost pair that took the start edge with
 * it (start bit and a 1 data bit) starts a frame whose grid comes from its
 * later stamps, by the same window, and not before the previous frame's stop
 * bits end. With no later stamp, nothing but the report says a character was
 * there (its data all ones): it may as well have been a glitch, and like one
 * it gives no character, as before.
 *
 * Unlike for seen edges, where it cancels out, the absolute latency matters
 * here, hence the floor. The window is narrower than a bit only while
 * lat_max - bit + floor_max - floor_min < bit. The defaults describe a Pi,
 * whose GPIO interrupt handler runs just under 9 us after the edge when idle
 * and 10-11 us with a desktop running (floor 8-12 us), rarely over 16 us;
 * 25 us leaves room above that tail and keeps the window unambiguous up to
 * 57600 baud (bit 17.4 us). Latency belongs to the machine, not to the baud
 * rate, so the bounds are fixed times rather than fractions of a bit: a
 * ceiling of 1.5 bit would claim that at 9600 baud no interrupt runs later
 * than 156 us, when the pairs lost there are lost to the rare stalls of other
 * drivers, of any length. With 25 us, pairs are put back from about 40000 baud
 * (bit 25 us) up; below, a lost pair is flagged as before.
 */

void suart_rx_init(struct suart_rx *rx, const struct suart_fmt *fmt, int level)
{
	*rx = (struct suart_rx){ .fmt = *fmt, .level = level ? 1 : 0,
				 .wait_mark = !level, .t_prev = -SUART_NEVER,
				 .t_free = -SUART_NEVER,
				 .floor_min_ns = SUART_RX_FLOOR_MIN_NS,
				 .floor_max_ns = SUART_RX_FLOOR_MAX_NS,
				 .lat_max_ns = SUART_RX_LAT_MAX_NS };
}

void suart_rx_set_fmt(struct suart_rx *rx, const struct suart_fmt *fmt, int level)
{
	u32 missed = rx->missed_edges, false_starts = rx->false_starts;
	u32 recovered = rx->recovered, lat_max = rx->lat_max_ns;
	u32 floor_min = rx->floor_min_ns, floor_max = rx->floor_max_ns;

	suart_rx_init(rx, fmt, level);
	rx->missed_edges = missed;
	rx->false_starts = false_starts;
	rx->recovered = recovered;
	rx->floor_min_ns = floor_min;
	rx->floor_max_ns = floor_max;
	rx->lat_max_ns = lat_max;
}

int suart_rx_set_latency(struct suart_rx *rx, u32 floor_min_ns, u32 floor_max_ns,
			 u32 max_ns)
{
	if (floor_min_ns > floor_max_ns || floor_max_ns > max_ns)
		return -1;
	rx->floor_min_ns = floor_min_ns;
	rx->floor_max_ns = floor_max_ns;
	rx->lat_max_ns = max_ns;
	return 0;
}

/*
 * Latencies under a bit cannot lose a pair at all: a report that says one
 * was lost lies outside the bounds. Over two bits they can hide more than one
 * pulse, or a longer one.
 */
static bool suart_rx_can_rebuild(const struct suart_rx *rx)
{
	const s64 bit = rx->fmt.bit_ns;

	return rx->lat_max_ns >= bit && rx->lat_max_ns < 2 * bit;
}

/* floor(@a / bit) for either sign of @a. */
static s64 suart_rx_fdiv(const struct suart_rx *rx, s64 a)
{
	s64 q = suart_div(a, rx->fmt.bit_ns);

	if (q * rx->fmt.bit_ns > a)
		q--;
	return q;
}

struct suart_rx_grid {
	s64 ref;	/* start of bit 0 as the frame's median stamp sees it */
	s64 quick;	/* start of bit 0 as its quickest stamp sees it */
	s64 lo, hi;	/* window for d, the lateness of a merged report */
	bool unsure;	/* rebuilt start edge that the window does not pin down */
};

/*
 * Where a lost pulse reported at @h began: the first grid point @p + n * bit
 * with h - hi <= it, and not before @from. @ok: it is the only one left in
 * the window.
 */
static s64 suart_rx_place(const struct suart_rx *rx, const struct suart_rx_grid *g,
			  s64 p, s64 h, s64 from, bool *ok)
{
	const s64 bit = rx->fmt.bit_ns;
	s64 q;

	if (from < h - g->hi)
		from = h - g->hi;
	q = p + suart_rx_fdiv(rx, from - p + bit - 1) * bit;
	*ok = q <= h - g->lo && q + bit > h - g->lo;
	return q;
}

/* Index of the bit boundary an edge at @t is on. */
static s64 suart_rx_slot_at(const struct suart_rx *rx, const struct suart_rx_grid *g, s64 t)
{
	const s64 bit = rx->fmt.bit_ns;

	return suart_rx_fdiv(rx, t - g->ref + bit * SUART_EARLY_NUM / SUART_EARLY_DEN);
}

static s64 suart_rx_slot(const struct suart_rx *rx, const struct suart_rx_grid *g,
			 unsigned int i)
{
	if (rx->lvl[i] & SUART_RX_SYN)
		return rx->t[i];
	return suart_rx_slot_at(rx, g, rx->t[i]);
}

static bool suart_rx_has_real(const struct suart_rx *rx)
{
	unsigned int i;

	for (i = 0; i < rx->n; i++)
		if (!(rx->lvl[i] & SUART_RX_SYN))
			return true;
	return false;
}

/*
 * The frame's bit grid. ref is the median of the instants the real edges
 * imply for a grid point (each stamp minus its whole number of bits from the
 * first), so a start edge stamped late by a slow interrupt does not drag
 * every later bit boundary with it; latency never makes a stamp early, so
 * ref may not land more than a quarter bit after a seen start edge. quick is
 * the same grid through the quickest stamp. A rebuilt start has no stamp:
 * its grid point is then chosen by the rule above, and with no real edge at
 * all a mid-window guess stands in.
 */
static void suart_rx_grid(const struct suart_rx *rx, struct suart_rx_grid *g)
{
	const s64 bit = rx->fmt.bit_ns;
	s64 imp[SUART_MAX_EDGES], anchor = 0, med, mn = SUART_NEVER, mx = -SUART_NEVER;
	unsigned int i, j, m = 0;
	bool ok;

	g->unsure = false;
	g->hi = (s64)rx->lat_max_ns - rx->floor_min_ns;
	for (i = 0; i < rx->n; i++) {
		s64 off, v;

		if (rx->lvl[i] & SUART_RX_SYN)
			continue;
		if (!m)
			anchor = rx->t[i];
		off = rx->t[i] - anchor;
		v = off - suart_div(off + bit / 2, rx->fmt.bit_ns) * bit;
		for (j = m; j > 0 && imp[j - 1] > v; j--)
			imp[j] = imp[j - 1];
		imp[j] = v;
		m++;
	}
	if (!m) {
		/* A rebuilt start and nothing else yet: mid-window. */
		g->lo = bit - rx->floor_max_ns;
		g->ref = rx->t_syn - (g->lo + g->hi) / 2;
		g->quick = g->ref;
		g->unsure = true;
		return;
	}
	med = imp[(m - 1) / 2];
	if (!rx->syn_start && med > bit / 4)
		med -= bit;
	g->ref = anchor + med;
	for (i = 0; i < rx->n; i++) {
		s64 r;

		if (rx->lvl[i] & SUART_RX_SYN)
			continue;
		r = rx->t[i] - g->ref - suart_rx_slot_at(rx, g, rx->t[i]) * bit;
		if (r < mn)
			mn = r;
		if (r > mx)
			mx = r;
	}
	g->quick = g->ref + mn;
	g->lo = bit - rx->floor_max_ns;
	if (g->lo < bit - rx->lat_max_ns + (mx - mn))
		g->lo = bit - rx->lat_max_ns + (mx - mn);
	if (rx->syn_start) {
		g->quick = suart_rx_place(rx, g, g->quick, rx->t_syn, rx->t_free, &ok);
		g->ref = g->quick - mn;
		g->unsure = !ok || !suart_rx_can_rebuild(rx);
	}
}

static void suart_rx_push(struct suart_rx *rx, s64 t, u8 lvl)
{
	if (rx->n < SUART_MAX_EDGES) {
		rx->t[rx->n] = t;
		rx->lvl[rx->n++] = lvl;
	} else {
		rx->missed = true;
	}
}

static int suart_rx_finish(struct suart_rx *rx, struct suart_char *out)
{
	const unsigned int nbits = suart_frame_bits(&rx->fmt);
	const unsigned int db = rx->fmt.data_bits;
	u32 levels = 0, data, stop_mask;
	struct suart_rx_grid g;
	unsigned int b, i = 1, cur = 0, pbit;
	u8 flags = 0;

	suart_rx_grid(rx, &g);
	for (b = 0; b < nbits; b++) {
		while (i < rx->n && suart_rx_slot(rx, &g, i) <= b)
			cur = rx->lvl[i++] & 1u;
		levels |= (u32)cur << b;
	}
	/* The next start bit cannot begin before this frame's stop bits end. */
	rx->t_free = g.quick + (s64)nbits * rx->fmt.bit_ns -
		     (rx->floor_max_ns - rx->floor_min_ns);
	rx->in_frame = false;
	rx->wait_mark = !rx->level;
	if ((levels & 1u) || !suart_rx_has_real(rx)) {
		/*
		 * Line back at mark before the middle of the start bit, or only a
		 * report with an unchanged level on an idle line: a glitch.
		 */
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
	if (rx->missed || g.unsure)
		flags |= SUART_NOISE | SUART_FE;
	rx->t_char = g.ref;
	out->data = (u8)data;
	out->flags = flags;
	return 1;
}

s64 suart_rx_deadline(const struct suart_rx *rx)
{
	const s64 bit = rx->fmt.bit_ns;
	s64 start;

	if (!rx->in_frame)
		return SUART_NEVER;
	/* A rebuilt start edge lies no later than h - (bit - floor_max). */
	start = rx->syn_start ? rx->t_syn - bit + rx->floor_max_ns : rx->t[0];
	return start + (s64)suart_frame_bits(&rx->fmt) * bit + bit / 2;
}

int suart_rx_timeout(struct suart_rx *rx, s64 now, struct suart_char *out)
{
	if (!rx->in_frame || now < suart_rx_deadline(rx))
		return 0;
	return suart_rx_finish(rx, out);
}

/* A frame starts with the edge stamped @t, or with one lost in the report at @t. */
static void suart_rx_begin(struct suart_rx *rx, s64 t, bool rebuilt)
{
	rx->in_frame = true;
	rx->missed = false;
	rx->wait_mark = false;
	rx->syn_start = rebuilt;
	rx->n = 0;
	if (rebuilt) {
		rx->t_syn = t;
		suart_rx_push(rx, 0, SUART_RX_SYN | 0);
		suart_rx_push(rx, 1, SUART_RX_SYN | 1);
		rx->recovered++;
	} else {
		suart_rx_push(rx, t, 0);
	}
}

/*
 * Bit index where the pulse lost in the report at @h began, on the current
 * frame's grid, or -1 where it cannot be placed. @prev: the report before.
 */
static s64 suart_rx_lost_pulse(const struct suart_rx *rx, const struct suart_rx_grid *g,
			       s64 h, s64 prev)
{
	const s64 bit = rx->fmt.bit_ns;
	s64 k, q;
	bool ok;

	if (!suart_rx_can_rebuild(rx) || g->unsure || !suart_rx_has_real(rx))
		return -1;
	q = suart_rx_place(rx, g, g->quick, h, h - g->hi, &ok);
	k = suart_rx_fdiv(rx, q - g->quick + bit / 2);
	if (!ok || k <= suart_rx_slot(rx, g, rx->n - 1u) || q <= prev)
		return -1;
	return k;
}

/* A report at @h with the level unchanged: an even number of edges was lost. */
static int suart_rx_merged(struct suart_rx *rx, s64 h, s64 prev, struct suart_char *out)
{
	const s64 nbits = suart_frame_bits(&rx->fmt);
	const int level = rx->level;
	struct suart_rx_grid g;
	int done = 0;
	s64 k;

	if (rx->in_frame) {
		suart_rx_grid(rx, &g);
		k = suart_rx_lost_pulse(rx, &g, h, prev);
		if (k < 0) {
			/* Cannot place it: lose the bits, not the frame boundary. */
			if (suart_rx_slot_at(rx, &g, h) < nbits) {
				rx->missed = true;
				return done;
			}
			done = suart_rx_finish(rx, out);
		} else if (k + 1 < nbits || (k + 1 == nbits && level)) {
			suart_rx_push(rx, k, SUART_RX_SYN | (u8)!level);
			suart_rx_push(rx, k + 1, SUART_RX_SYN | (u8)level);
			rx->recovered++;
			return done;
		} else if (k + 1 == nbits) {
			/* The last stop bit; its end is the next start edge, on this grid. */
			suart_rx_push(rx, k, SUART_RX_SYN | 1);
			done = suart_rx_finish(rx, out);
			suart_rx_begin(rx, g.ref + nbits * (s64)rx->fmt.bit_ns, false);
			rx->recovered++;
			return done;
		} else {
			/* After this frame, whose grid says nothing about the next one. */
			done = suart_rx_finish(rx, out);
		}
	}
	if (level == 0)
		/* Mark then space again: a start bit, stamped as late as the first edge. */
		suart_rx_begin(rx, h, false);
	else if (suart_rx_can_rebuild(rx) &&
		 h - (s64)rx->fmt.bit_ns + rx->floor_max_ns >= rx->t_free)
		suart_rx_begin(rx, h, true);
	return done;
}

int suart_rx_edge(struct suart_rx *rx, s64 t, int level, struct suart_char *out)
{
	const s64 nbits = suart_frame_bits(&rx->fmt);
	struct suart_rx_grid g;
	s64 prev = rx->t_prev;
	int done = 0;

	rx->t_prev = t;
	if ((level ? 1 : 0) == rx->level) {
		rx->missed_edges++;
		return suart_rx_merged(rx, t, prev, out);
	}
	level = level ? 1 : 0;
	if (rx->in_frame) {
		s64 slot;

		if (!suart_rx_has_real(rx)) {
			/* The first stamp of a rebuilt frame sets its grid. */
			suart_rx_push(rx, t, (u8)level);
			suart_rx_grid(rx, &g);
			slot = suart_rx_slot(rx, &g, rx->n - 1u);
			rx->n--;
		} else {
			suart_rx_grid(rx, &g);
			slot = suart_rx_slot_at(rx, &g, t);
		}
		if (slot >= nbits)
			done = suart_rx_finish(rx, out);
		else if ((rx->lvl[rx->n - 1u] & SUART_RX_SYN) && slot <= rx->t[rx->n - 1u])
			rx->missed = true;	/* no room for the pulse put back */
	}
	rx->level = level;
	if (rx->in_frame)
		suart_rx_push(rx, t, (u8)rx->level);
	else if (rx->level == 0 && !rx->wait_mark)
		suart_rx_begin(rx, t, false);
	else if (rx->level == 1)
		rx->wait_mark = false;
	return done;
}
