/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * softuart: a UART made of two GPIO lines, timed by hrtimers.
 *
 * The core (softuart_main.c) is a serial_core driver that runs the codec
 * (softuart_codec.c) from a TX hrtimer and from RX edges. Where the edges
 * come from and where TX levels go is a line backend: real GPIOs
 * (softuart_gpio.c), or a test-only software loopback (softuart_loopback.c).
 */
#ifndef SOFTUART_H
#define SOFTUART_H

#include <linux/hrtimer.h>
#include <linux/kfifo.h>
#include <linux/serial_core.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

#include "softuart_codec.h"

#define SOFTUART_NAME		"softuart"
#define SOFTUART_MAX_PORTS	8
#define SOFTUART_MIN_BAUD	1200
#define SOFTUART_MAX_BAUD	115200
#define SOFTUART_DEFAULT_BAUD	9600

struct softuart_port;

struct softuart_line_ops {
	const char *name;
	/*
	 * The line applies each TX level at the instant it was due (true for
	 * the loopback): lateness of the TX timer then cannot distort bits.
	 */
	bool exact;
	/* Drive TX; @due is when the edge was scheduled. Atomic context. */
	void (*set_tx)(struct softuart_port *sp, int level, ktime_t due);
	/* Current RX level (1 = mark). Atomic context. */
	int (*rx_level)(struct softuart_port *sp);
	/* Start/stop delivering RX edges. Process context. */
	void (*rx_start)(struct softuart_port *sp);
	void (*rx_stop)(struct softuart_port *sp);
};

/*
 * Locking: the port lock (serial_core's) guards the tty side; tx_lock and
 * rx_lock (raw, taken in hard timer/interrupt context) guard the codecs.
 * Nesting order: port lock -> tx_lock -> loopback wire lock -> rx_lock.
 */
struct softuart_port {
	struct uart_port port;
	const struct softuart_line_ops *line;
	void *line_priv;
	u32 default_baud;

	/* TX: codec and our byte FIFO's consumer side, in hard timer context. */
	raw_spinlock_t tx_lock;
	struct hrtimer tx_timer;
	struct suart_tx tx;
	bool tx_running;
	bool tx_refill;		/* our FIFO fell to half: tx_work should top it up */
	DECLARE_KFIFO(tx_fifo, u8, 64);
	struct work_struct tx_work;

	/* RX: codec and the decoded-character FIFO's producer side. */
	raw_spinlock_t rx_lock;
	struct hrtimer rx_timer;
	struct suart_rx rx;
	bool rx_running;
	s64 rx_armed;
	u32 rx_overruns;
	DECLARE_KFIFO(rx_fifo, u16, 256);
	struct work_struct rx_work;
};

/* Feed one RX edge seen at @t with the line at @level. Atomic context. */
void softuart_rx_edge(struct softuart_port *sp, ktime_t t, int level);

int softuart_port_add(struct softuart_port *sp, struct device *dev, int line_id);
void softuart_port_remove(struct softuart_port *sp);

int softuart_gpio_probe(struct platform_device *pdev);
/* Test-only loopback ports (softuart_loopback.c), per the module parameters. */
int softuart_loopback_init(void);
void softuart_loopback_exit(void);

#endif /* SOFTUART_H */
