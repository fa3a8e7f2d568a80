// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Batch entry points over the soft-UART codec for the ctypes tests: drive the
 * transmitter with a simulated timer, stamp edges the way a GPIO interrupt
 * handler would, and run two receivers (edge timestamps, per-bit sampling)
 * over whole streams in one call.
 */
#include <string.h>

#include "softuart_codec.h"

struct rec {
	s64 *t;
	u8 *lvl;
	int n, max;
	const u8 *data;
	int ndata, next;
	int level;		/* line level now, mark at first */
	s64 now;		/* time the simulated timer callback runs */
};

/* A line change: driving the level the line already has changes nothing. */
static void rec_set_line(void *ctx, int level, s64 when)
{
	struct rec *r = ctx;

	if (level == r->level)
		return;
	r->level = level;
	if (r->n < r->max) {
		r->t[r->n] = when;
		r->lvl[r->n] = (u8)level;
	}
	r->n++;
}

static int rec_next_byte(void *ctx)
{
	struct rec *r = ctx;

	return r->next < r->ndata ? r->data[r->next++] : -1;
}

static const struct suart_tx_ops rec_ops = {
	.set_line = rec_set_line,
	.next_byte = rec_next_byte,
};

/*
 * Transmit @data through a timer that runs each callback lat[i % nlat] ns
 * after its deadline (nlat == 0: on time). Records every line change; returns
 * how many, and the codec's abort/drop counters through @stats[0..1].
 */
int h_tx_stream(const struct suart_fmt *fmt, const u8 *data, int ndata,
		int exact, const s64 *lat, int nlat, s64 *t, u8 *lvl, int max,
		u32 *stats)
{
	struct rec r = { .t = t, .lvl = lvl, .max = max, .data = data,
			 .ndata = ndata, .level = 1 };
	struct suart_tx tx;
	s64 due;
	int i = 0;

	suart_tx_init(&tx, fmt, &rec_ops, &r, exact != 0);
	due = suart_tx_kick(&tx, 1000000);
	while (due != SUART_NEVER) {
		s64 now = due + (nlat ? lat[i++ % nlat] : 0);

		due = suart_tx_run(&tx, now);
		if (r.n > max)
			return -1;
	}
	stats[0] = tx.late_aborts;
	stats[1] = tx.dropped;
	return r.n;
}

/* Send a break of @hold_ns after @before, then @after; records the line. */
int h_tx_break(const struct suart_fmt *fmt, const u8 *before, int nb,
	       s64 hold_ns, const u8 *after, int na, s64 *t, u8 *lvl, int max)
{
	struct rec r = { .t = t, .lvl = lvl, .max = max, .data = before,
			 .ndata = nb, .level = 1 };
	struct suart_tx tx;
	s64 due, now = 1000000;

	suart_tx_init(&tx, fmt, &rec_ops, &r, true);
	due = suart_tx_kick(&tx, now);
	while (due != SUART_NEVER) {
		now = due;
		due = suart_tx_run(&tx, now);
	}
	tx.brk = true;
	due = suart_tx_kick(&tx, now);
	while (due != SUART_NEVER)
		due = suart_tx_run(&tx, due);
	if (tx.state != SUART_TX_BREAK)
		return -1;
	tx.brk = false;
	r.data = after;
	r.ndata = na;
	r.next = 0;
	due = suart_tx_kick(&tx, now + hold_ns);
	while (due != SUART_NEVER)
		due = suart_tx_run(&tx, due);
	return r.n;
}

/*
 * What a GPIO interrupt handler sees: edge i raises the interrupt at t[i];
 * the handler runs at t[i] + lat[i] (never before the previous one finished,
 * @cost ns), stamps the time and reads the line. Edges that happen before the
 * handler runs merge into that one call. Returns the number of handler calls.
 */
int h_irq_stamp(const s64 *t, const u8 *lvl, int n, const s64 *lat, s64 cost,
		s64 *out_t, u8 *out_lvl)
{
	s64 busy_until = -((s64)1 << 62);
	int i = 0, m = 0;

	while (i < n) {
		s64 run = t[i] + lat[i];
		int j = i;

		if (run < busy_until + cost)
			run = busy_until + cost;
		while (j + 1 < n && t[j + 1] <= run)
			j++;
		out_t[m] = run;
		out_lvl[m++] = lvl[j];
		busy_until = run;
		i = j + 1;
	}
	return m;
}

/*
 * Feed stamped edges to the edge-timestamp receiver (latency bounds @lat[0..2],
 * NULL: the defaults); returns chars decoded. @stats: missed, false starts,
 * pairs rebuilt.
 */
int h_rx_edges(const struct suart_fmt *fmt, const u32 *lat, const s64 *t, const u8 *lvl,
	       int n, u8 *data, u8 *flags, s64 *start, int max, u32 *stats)
{
	struct suart_rx rx;
	struct suart_char c;
	int i, m = 0;

	suart_rx_init(&rx, fmt, 1);
	if (lat && suart_rx_set_latency(&rx, lat[0], lat[1], lat[2]))
		return -1;
	for (i = 0; i <= n && m < max; i++) {
		int got;

		if (i < n)
			got = suart_rx_edge(&rx, t[i], lvl[i], &c);
		else
			got = suart_rx_timeout(&rx, SUART_NEVER - 1, &c);
		if (got) {
			data[m] = c.data;
			flags[m] = c.flags;
			start[m++] = rx.t_char;
		}
	}
	stats[0] = rx.missed_edges;
	stats[1] = rx.false_starts;
	stats[2] = rx.recovered;
	return m;
}

static int level_at(const s64 *t, const u8 *lvl, int n, int *cursor, s64 when)
{
	while (*cursor < n && t[*cursor] <= when)
		(*cursor)++;
	return *cursor ? lvl[*cursor - 1] : 1;
}

/*
 * The per-bit sampling receiver of the classic soft-UART modules: the falling
 * edge interrupt (handler at t + lat_irq) starts a timer half a bit later,
 * then the timer is forwarded one bit period per callback and each callback
 * (running lat_timer after its expiry) reads the line once. Start edges that
 * come before the last stop bit was read are missed. @t/@lvl is the true line.
 */
int h_rx_perbit(const struct suart_fmt *fmt, const s64 *t, const u8 *lvl, int n,
		const s64 *lat_irq, const s64 *lat_timer, int nlat, u8 *data,
		u8 *flags, s64 *start, int max)
{
	const unsigned int nbits = suart_frame_bits(fmt);
	const s64 bit = fmt->bit_ns;
	int i, m = 0, cursor = 0, k = 0;
	s64 busy_until = 0;

	for (i = 0; i < n && m < max; i++) {
		unsigned int b, ones, db = fmt->data_bits, pos;
		s64 grid, read = 0;
		u32 levels = 0;
		u8 f = 0;

		if (lvl[i] != 0 || (i > 0 && lvl[i - 1] == 0))
			continue;
		if (t[i] + lat_irq[k % nlat] <= busy_until)
			continue;
		grid = t[i] + lat_irq[k % nlat] + bit / 2;
		for (b = 0; b < nbits; b++) {
			read = grid + (s64)b * bit + lat_timer[(k + b) % nlat];
			levels |= (u32)level_at(t, lvl, n, &cursor, read) << b;
		}
		k += nbits;
		busy_until = read;
		data[m] = (u8)((levels >> 1) & ((1u << db) - 1u));
		pos = 1 + db;
		if (fmt->parity) {
			ones = 0;
			for (b = 0; b < db; b++)
				ones += (data[m] >> b) & 1u;
			ones += (levels >> pos) & 1u;
			if ((ones & 1u) != (fmt->parity == SUART_PARITY_ODD))
				f |= SUART_PE;
			pos++;
		}
		for (; pos < nbits; pos++)
			if (!((levels >> pos) & 1u))
				f |= SUART_FE;
		flags[m] = f;
		start[m++] = t[i];
	}
	return m;
}
