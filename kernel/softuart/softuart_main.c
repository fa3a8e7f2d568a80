// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * softuart: serial_core driver for UARTs bit-banged on two GPIO lines.
 *
 * TX runs from an absolute-deadline HARD hrtimer that fires once per line
 * edge. RX is decoded from edge timestamps taken in the hard interrupt
 * handler, with an hrtimer closing each character. Hard-context code only
 * takes raw spinlocks; characters cross to and from the tty layer through
 * two FIFOs and two work items, which take the port lock.
 */
#include <linux/idr.h>
#include <linux/module.h>
#include <linux/of.h>
#include <linux/platform_device.h>
#include <linux/tty.h>
#include <linux/tty_flip.h>

#include "softuart.h"
#include "softuart_compat.h"

/* Not a real UART type: any value other than PORT_UNKNOWN shows the port. */
#define PORT_SOFTUART		0x5f75

/* SUART_* receive flags beyond the codec's: an RX FIFO overrun. */
#define SOFTUART_OE		0x80

static DEFINE_IDA(softuart_ida);

/* How late the RX edge interrupt runs; see suart_rx_set_latency(). */
static unsigned int rx_floor_min_ns = SUART_RX_FLOOR_MIN_NS;
module_param(rx_floor_min_ns, uint, 0444);
MODULE_PARM_DESC(rx_floor_min_ns, "RX: least latency (ns) of a character's quickest edge interrupt");

static unsigned int rx_floor_max_ns = SUART_RX_FLOOR_MAX_NS;
module_param(rx_floor_max_ns, uint, 0444);
MODULE_PARM_DESC(rx_floor_max_ns, "RX: most latency (ns) of a character's quickest edge interrupt");

static unsigned int rx_lat_max_ns = SUART_RX_LAT_MAX_NS;
module_param(rx_lat_max_ns, uint, 0444);
MODULE_PARM_DESC(rx_lat_max_ns, "RX: most latency (ns) of any edge interrupt");

static struct uart_driver softuart_uart = {
	.owner		= THIS_MODULE,
	.driver_name	= SOFTUART_NAME,
	.dev_name	= "ttySOFT",
	.nr		= SOFTUART_MAX_PORTS,
};

static struct softuart_port *to_softuart(struct uart_port *port)
{
	return container_of(port, struct softuart_port, port);
}

/* ------------------------------------------------------------- TX --- */

static void softuart_tx_set_line(void *ctx, int level, s64 when)
{
	struct softuart_port *sp = ctx;

	sp->line->set_tx(sp, level, ns_to_ktime(when));
}

static int softuart_tx_next_byte(void *ctx)
{
	struct softuart_port *sp = ctx;
	u8 c;

	if (!kfifo_get(&sp->tx_fifo, &c))
		return -1;
	/* Half empty: ask for more, once per crossing, not once per edge. */
	if (kfifo_len(&sp->tx_fifo) == kfifo_size(&sp->tx_fifo) / 2 - 1)
		sp->tx_refill = true;
	return c;
}

static const struct suart_tx_ops softuart_tx_ops = {
	.set_line	= softuart_tx_set_line,
	.next_byte	= softuart_tx_next_byte,
};

static void softuart_tx_arm(struct softuart_port *sp, s64 due)
{
	if (due != SUART_NEVER)
		hrtimer_start(&sp->tx_timer, ns_to_ktime(due), HRTIMER_MODE_ABS_HARD);
}

static enum hrtimer_restart softuart_tx_timer(struct hrtimer *timer)
{
	struct softuart_port *sp = container_of(timer, struct softuart_port, tx_timer);
	enum hrtimer_restart ret = HRTIMER_NORESTART;
	bool refill;
	s64 next;

	raw_spin_lock(&sp->tx_lock);
	if (sp->tx_running) {
		next = suart_tx_run(&sp->tx, ktime_get_ns());
		if (next != SUART_NEVER) {
			hrtimer_set_expires(timer, ns_to_ktime(next));
			ret = HRTIMER_RESTART;
		}
	}
	refill = sp->tx_running && sp->tx_refill;
	sp->tx_refill = false;
	raw_spin_unlock(&sp->tx_lock);

	if (refill)
		queue_work(system_highpri_wq, &sp->tx_work);
	return ret;
}

/* Move bytes from the tty's transmit buffer into ours. Port lock held. */
static void softuart_tx_fill(struct softuart_port *sp)
{
	struct uart_port *port = &sp->port;
	unsigned long flags;
	bool added = false;
	u8 c;

	if (uart_tx_stopped(port))
		return;
	while (!kfifo_is_full(&sp->tx_fifo) && softuart_xmit_get(port, &c)) {
		kfifo_put(&sp->tx_fifo, c);
		added = true;
	}
	if (added) {
		raw_spin_lock_irqsave(&sp->tx_lock, flags);
		if (sp->tx_running && suart_tx_idle(&sp->tx))
			softuart_tx_arm(sp, suart_tx_kick(&sp->tx, ktime_get_ns()));
		raw_spin_unlock_irqrestore(&sp->tx_lock, flags);
	}
	if (softuart_xmit_pending(port) < WAKEUP_CHARS)
		uart_write_wakeup(port);
}

static void softuart_tx_work(struct work_struct *work)
{
	struct softuart_port *sp = container_of(work, struct softuart_port, tx_work);
	unsigned long flags;

	softuart_port_lock(&sp->port, flags);
	softuart_tx_fill(sp);
	softuart_port_unlock(&sp->port, flags);
}

static void softuart_start_tx(struct uart_port *port)
{
	softuart_tx_fill(to_softuart(port));
}

static void softuart_stop_tx(struct uart_port *port)
{
	/* Bytes already in our FIFO still go out; nothing more is taken. */
}

static unsigned int softuart_tx_empty(struct uart_port *port)
{
	struct softuart_port *sp = to_softuart(port);
	unsigned long flags;
	bool empty;

	raw_spin_lock_irqsave(&sp->tx_lock, flags);
	empty = kfifo_is_empty(&sp->tx_fifo) && suart_tx_idle(&sp->tx);
	raw_spin_unlock_irqrestore(&sp->tx_lock, flags);
	return empty ? TIOCSER_TEMT : 0;
}

/* tcflush(TCOFLUSH): also forget what already moved into our FIFO. Port lock held. */
static void softuart_flush_buffer(struct uart_port *port)
{
	struct softuart_port *sp = to_softuart(port);
	unsigned long flags;

	raw_spin_lock_irqsave(&sp->tx_lock, flags);
	kfifo_reset_out(&sp->tx_fifo);
	raw_spin_unlock_irqrestore(&sp->tx_lock, flags);
}

static void softuart_break_ctl(struct uart_port *port, int ctl)
{
	struct softuart_port *sp = to_softuart(port);
	unsigned long flags;

	raw_spin_lock_irqsave(&sp->tx_lock, flags);
	sp->tx.brk = ctl != 0;
	if (sp->tx_running)
		softuart_tx_arm(sp, suart_tx_kick(&sp->tx, ktime_get_ns()));
	raw_spin_unlock_irqrestore(&sp->tx_lock, flags);
}

/* ------------------------------------------------------------- RX --- */

/* Queue a decoded character for the tty layer. rx_lock held. */
static void softuart_rx_push(struct softuart_port *sp, const struct suart_char *c)
{
	if (!kfifo_put(&sp->rx_fifo, c->data | (u16)c->flags << 8))
		sp->rx_overruns++;
}

static void softuart_rx_arm(struct softuart_port *sp)
{
	s64 deadline = suart_rx_deadline(&sp->rx);

	if (deadline != SUART_NEVER && deadline != sp->rx_armed) {
		sp->rx_armed = deadline;
		hrtimer_start(&sp->rx_timer, ns_to_ktime(deadline), HRTIMER_MODE_ABS_HARD);
	}
}

void softuart_rx_edge(struct softuart_port *sp, ktime_t t, int level)
{
	struct suart_char c;
	bool queued = false;
	unsigned long flags;

	raw_spin_lock_irqsave(&sp->rx_lock, flags);
	if (sp->rx_running) {
		if (suart_rx_edge(&sp->rx, ktime_to_ns(t), level, &c)) {
			softuart_rx_push(sp, &c);
			queued = true;
		}
		softuart_rx_arm(sp);
	}
	raw_spin_unlock_irqrestore(&sp->rx_lock, flags);
	if (queued)
		queue_work(system_highpri_wq, &sp->rx_work);
}

static enum hrtimer_restart softuart_rx_timer(struct hrtimer *timer)
{
	struct softuart_port *sp = container_of(timer, struct softuart_port, rx_timer);
	enum hrtimer_restart ret = HRTIMER_NORESTART;
	struct suart_char c;
	bool queued = false;

	raw_spin_lock(&sp->rx_lock);
	if (sp->rx_running) {
		if (suart_rx_timeout(&sp->rx, ktime_get_ns(), &c)) {
			softuart_rx_push(sp, &c);
			queued = true;
		}
		/* A new frame may have begun since this timer was armed. */
		if (sp->rx.in_frame) {
			sp->rx_armed = suart_rx_deadline(&sp->rx);
			hrtimer_set_expires(timer, ns_to_ktime(sp->rx_armed));
			ret = HRTIMER_RESTART;
		} else {
			sp->rx_armed = SUART_NEVER;
		}
	}
	raw_spin_unlock(&sp->rx_lock);
	if (queued)
		queue_work(system_highpri_wq, &sp->rx_work);
	return ret;
}

static void softuart_rx_work(struct work_struct *work)
{
	struct softuart_port *sp = container_of(work, struct softuart_port, rx_work);
	struct uart_port *port = &sp->port;
	struct tty_port *tport = &port->state->port;
	unsigned long flags;
	u32 overruns;
	u16 v;

	raw_spin_lock_irqsave(&sp->rx_lock, flags);
	overruns = sp->rx_overruns;
	sp->rx_overruns = 0;
	raw_spin_unlock_irqrestore(&sp->rx_lock, flags);

	softuart_port_lock(port, flags);
	while (kfifo_get(&sp->rx_fifo, &v)) {
		u8 ch = v & 0xff, st = v >> 8, flag = TTY_NORMAL;

		port->icount.rx++;
		if (st & SUART_BREAK)
			port->icount.brk++;
		else if (st & SUART_PE)
			port->icount.parity++;
		else if (st & SUART_FE)
			port->icount.frame++;
		if (st & port->ignore_status_mask)
			continue;
		st &= port->read_status_mask;
		if (st & SUART_BREAK)
			flag = TTY_BREAK;
		else if (st & SUART_PE)
			flag = TTY_PARITY;
		else if (st & SUART_FE)
			flag = TTY_FRAME;
		if (!tty_insert_flip_char(tport, ch, flag))
			port->icount.buf_overrun++;	/* the tty layer's buffers are full */
	}
	if (overruns) {
		port->icount.overrun += overruns;
		if (!(port->ignore_status_mask & SOFTUART_OE))
			tty_insert_flip_char(tport, 0, TTY_OVERRUN);
	}
	softuart_port_unlock(port, flags);
	tty_flip_buffer_push(tport);
}

static void softuart_stop_rx(struct uart_port *port)
{
	struct softuart_port *sp = to_softuart(port);
	unsigned long flags;

	raw_spin_lock_irqsave(&sp->rx_lock, flags);
	sp->rx_running = false;
	raw_spin_unlock_irqrestore(&sp->rx_lock, flags);
}

/* -------------------------------------------------------- port ops --- */

static int softuart_startup(struct uart_port *port)
{
	struct softuart_port *sp = to_softuart(port);
	unsigned long flags;
	int level;

	kfifo_reset(&sp->tx_fifo);
	kfifo_reset(&sp->rx_fifo);

	raw_spin_lock_irqsave(&sp->tx_lock, flags);
	suart_tx_reset(&sp->tx);
	sp->tx_running = true;
	raw_spin_unlock_irqrestore(&sp->tx_lock, flags);

	level = sp->line->rx_level(sp);	/* outside rx_lock: the loopback locks in there */
	raw_spin_lock_irqsave(&sp->rx_lock, flags);
	suart_rx_set_fmt(&sp->rx, &sp->rx.fmt, level);
	sp->rx_armed = SUART_NEVER;
	sp->rx_overruns = 0;
	sp->rx_running = true;
	raw_spin_unlock_irqrestore(&sp->rx_lock, flags);

	sp->line->rx_start(sp);
	return 0;
}

static void softuart_shutdown(struct uart_port *port)
{
	struct softuart_port *sp = to_softuart(port);
	unsigned long flags;

	sp->line->rx_stop(sp);
	raw_spin_lock_irqsave(&sp->rx_lock, flags);
	sp->rx_running = false;
	raw_spin_unlock_irqrestore(&sp->rx_lock, flags);
	raw_spin_lock_irqsave(&sp->tx_lock, flags);
	sp->tx_running = false;
	raw_spin_unlock_irqrestore(&sp->tx_lock, flags);

	hrtimer_cancel(&sp->rx_timer);
	hrtimer_cancel(&sp->tx_timer);
	cancel_work_sync(&sp->rx_work);
	cancel_work_sync(&sp->tx_work);

	/* Whatever was cut short, leave the line idle at mark. */
	raw_spin_lock_irqsave(&sp->tx_lock, flags);
	suart_tx_reset(&sp->tx);
	sp->line->set_tx(sp, 1, ktime_get());
	raw_spin_unlock_irqrestore(&sp->tx_lock, flags);
}

static void softuart_set_termios(struct uart_port *port, struct ktermios *new,
				 SOFTUART_OLD_TERMIOS *old)
{
	struct softuart_port *sp = to_softuart(port);
	unsigned int baud, bits;
	struct suart_fmt fmt;
	unsigned long flags;
	int level;
	u8 parity;

	new->c_cflag &= ~(CMSPAR | CRTSCTS);
	switch (new->c_cflag & CSIZE) {
	case CS5:
		bits = 5;
		break;
	case CS6:
		bits = 6;
		break;
	case CS7:
		bits = 7;
		break;
	default:
		bits = 8;
		break;
	}
	if (!(new->c_cflag & PARENB))
		parity = SUART_PARITY_NONE;
	else
		parity = new->c_cflag & PARODD ? SUART_PARITY_ODD : SUART_PARITY_EVEN;
	baud = uart_get_baud_rate(port, new, old, SOFTUART_MIN_BAUD, SOFTUART_MAX_BAUD);
	if (suart_fmt_set(&fmt, baud, bits, parity, new->c_cflag & CSTOPB ? 2 : 1))
		return;
	if (tty_termios_baud_rate(new))
		tty_termios_encode_baud_rate(new, baud, baud);

	softuart_port_lock(port, flags);
	uart_update_timeout(port, new->c_cflag, baud);
	port->read_status_mask = SOFTUART_OE;
	if (new->c_iflag & INPCK)
		port->read_status_mask |= SUART_FE | SUART_PE;
	if (new->c_iflag & (IGNBRK | BRKINT | PARMRK))
		port->read_status_mask |= SUART_BREAK;
	port->ignore_status_mask = 0;
	if (new->c_iflag & IGNPAR)
		port->ignore_status_mask |= SUART_FE | SUART_PE;
	if (new->c_iflag & IGNBRK) {
		port->ignore_status_mask |= SUART_BREAK;
		if (new->c_iflag & IGNPAR)
			port->ignore_status_mask |= SOFTUART_OE;
	}
	if (!(new->c_cflag & CREAD))
		port->ignore_status_mask |= SUART_FE | SUART_PE | SUART_BREAK | SOFTUART_OE |
					    SUART_NOISE;
	softuart_port_unlock(port, flags);

	/* The transmitter picks the new shape up from its next frame. */
	raw_spin_lock_irqsave(&sp->tx_lock, flags);
	sp->tx.fmt = fmt;
	raw_spin_unlock_irqrestore(&sp->tx_lock, flags);
	level = sp->line->rx_level(sp);
	raw_spin_lock_irqsave(&sp->rx_lock, flags);
	suart_rx_set_fmt(&sp->rx, &fmt, level);
	raw_spin_unlock_irqrestore(&sp->rx_lock, flags);
}

static unsigned int softuart_get_mctrl(struct uart_port *port)
{
	return TIOCM_CAR | TIOCM_DSR | TIOCM_CTS;
}

static void softuart_set_mctrl(struct uart_port *port, unsigned int mctrl)
{
}

static const char *softuart_type(struct uart_port *port)
{
	return port->type == PORT_SOFTUART ? SOFTUART_NAME : NULL;
}

static void softuart_release_port(struct uart_port *port)
{
}

static int softuart_request_port(struct uart_port *port)
{
	return 0;
}

static void softuart_config_port(struct uart_port *port, int flags)
{
	if (flags & UART_CONFIG_TYPE)
		port->type = PORT_SOFTUART;
}

static int softuart_verify_port(struct uart_port *port, struct serial_struct *ser)
{
	return ser->type == PORT_UNKNOWN || ser->type == PORT_SOFTUART ? 0 : -EINVAL;
}

static const struct uart_ops softuart_ops = {
	.tx_empty	= softuart_tx_empty,
	.set_mctrl	= softuart_set_mctrl,
	.get_mctrl	= softuart_get_mctrl,
	.stop_tx	= softuart_stop_tx,
	.start_tx	= softuart_start_tx,
	.stop_rx	= softuart_stop_rx,
	.break_ctl	= softuart_break_ctl,
	.startup	= softuart_startup,
	.shutdown	= softuart_shutdown,
	.flush_buffer	= softuart_flush_buffer,
	.set_termios	= softuart_set_termios,
	.type		= softuart_type,
	.release_port	= softuart_release_port,
	.request_port	= softuart_request_port,
	.config_port	= softuart_config_port,
	.verify_port	= softuart_verify_port,
};

/* ------------------------------------------------ sysfs counters --- */

static struct softuart_port *softuart_from_tty_dev(struct device *dev)
{
	struct tty_port *tport = dev_get_drvdata(dev);
	struct uart_state *state = container_of(tport, struct uart_state, port);

	return state->uart_port ? to_softuart(state->uart_port) : NULL;
}

#define SOFTUART_COUNTER_ATTR(_name, _lock, _expr)				\
static ssize_t _name##_show(struct device *dev, struct device_attribute *attr,	\
			    char *buf)						\
{										\
	struct softuart_port *sp = softuart_from_tty_dev(dev);			\
	unsigned long flags;							\
	u32 v;									\
										\
	if (!sp)								\
		return -ENODEV;							\
	raw_spin_lock_irqsave(&sp->_lock, flags);				\
	v = (_expr);								\
	raw_spin_unlock_irqrestore(&sp->_lock, flags);				\
	return sysfs_emit(buf, "%u\n", v);					\
}										\
static DEVICE_ATTR_RO(_name)

SOFTUART_COUNTER_ATTR(tx_late_aborts, tx_lock, sp->tx.late_aborts);
SOFTUART_COUNTER_ATTR(tx_dropped, tx_lock, sp->tx.dropped);
SOFTUART_COUNTER_ATTR(rx_missed_edges, rx_lock, sp->rx.missed_edges);
SOFTUART_COUNTER_ATTR(rx_false_starts, rx_lock, sp->rx.false_starts);
SOFTUART_COUNTER_ATTR(rx_rebuilt_pairs, rx_lock, sp->rx.recovered);

static ssize_t softuart_line_show(struct device *dev, struct device_attribute *attr,
				  char *buf)
{
	struct softuart_port *sp = softuart_from_tty_dev(dev);

	return sp ? sysfs_emit(buf, "%s\n", sp->line->name) : -ENODEV;
}
static DEVICE_ATTR_RO(softuart_line);

static struct attribute *softuart_attrs[] = {
	&dev_attr_tx_late_aborts.attr,
	&dev_attr_tx_dropped.attr,
	&dev_attr_rx_missed_edges.attr,
	&dev_attr_rx_false_starts.attr,
	&dev_attr_rx_rebuilt_pairs.attr,
	&dev_attr_softuart_line.attr,
	NULL,
};

static struct attribute_group softuart_attr_group = {
	.attrs = softuart_attrs,
};

/* ------------------------------------------------- registration --- */

int softuart_port_add(struct softuart_port *sp, struct device *dev, int line_id)
{
	struct uart_port *port = &sp->port;
	struct suart_fmt fmt;
	int id, ret;

	if (!sp->default_baud)
		sp->default_baud = SOFTUART_DEFAULT_BAUD;
	if (suart_fmt_set(&fmt, sp->default_baud, 8, SUART_PARITY_NONE, 1))
		return dev_err_probe(dev, -EINVAL, "unsupported baud rate %u\n",
				     sp->default_baud);
	if (rx_floor_min_ns > rx_floor_max_ns || rx_floor_max_ns > rx_lat_max_ns)
		return dev_err_probe(dev, -EINVAL,
				     "need rx_floor_min_ns <= rx_floor_max_ns <= rx_lat_max_ns\n");

	id = line_id >= 0 ? ida_alloc_range(&softuart_ida, line_id, line_id, GFP_KERNEL)
			  : ida_alloc_max(&softuart_ida, SOFTUART_MAX_PORTS - 1, GFP_KERNEL);
	if (id < 0)
		return dev_err_probe(dev, id, "no free ttySOFT line\n");

	raw_spin_lock_init(&sp->tx_lock);
	raw_spin_lock_init(&sp->rx_lock);
	INIT_KFIFO(sp->tx_fifo);
	INIT_KFIFO(sp->rx_fifo);
	INIT_WORK(&sp->tx_work, softuart_tx_work);
	INIT_WORK(&sp->rx_work, softuart_rx_work);
	softuart_hrtimer_setup(&sp->tx_timer, softuart_tx_timer, CLOCK_MONOTONIC,
			       HRTIMER_MODE_ABS_HARD);
	softuart_hrtimer_setup(&sp->rx_timer, softuart_rx_timer, CLOCK_MONOTONIC,
			       HRTIMER_MODE_ABS_HARD);
	suart_tx_init(&sp->tx, &fmt, &softuart_tx_ops, sp, sp->line->exact);
	suart_rx_init(&sp->rx, &fmt, 1);
	suart_rx_set_latency(&sp->rx, rx_floor_min_ns, rx_floor_max_ns, rx_lat_max_ns);
	sp->rx_armed = SUART_NEVER;

	port->dev = dev;
	port->line = id;
	port->type = PORT_SOFTUART;
	port->iotype = UPIO_PORT;
	port->ops = &softuart_ops;
	port->fifosize = kfifo_size(&sp->tx_fifo);
	port->uartclk = SOFTUART_MAX_BAUD * 16;
	port->flags = UPF_FIXED_TYPE;
	port->attr_group = &softuart_attr_group;

	ret = uart_add_one_port(&softuart_uart, port);
	if (ret) {
		ida_free(&softuart_ida, id);
		return dev_err_probe(dev, ret, "cannot register ttySOFT%d\n", id);
	}
	dev_info(dev, "ttySOFT%d on %s line, %u baud\n", id, sp->line->name,
		 sp->default_baud);
	return 0;
}

void softuart_port_remove(struct softuart_port *sp)
{
	int id = sp->port.line;

	uart_remove_one_port(&softuart_uart, &sp->port);
	ida_free(&softuart_ida, id);
}

static void softuart_platform_remove(struct platform_device *pdev)
{
	softuart_port_remove(platform_get_drvdata(pdev));
}
SOFTUART_DEFINE_REMOVE(softuart_platform_remove)

static const struct of_device_id softuart_of_match[] = {
	{ .compatible = "pipilot,softuart" },
	{ }
};
MODULE_DEVICE_TABLE(of, softuart_of_match);

static struct platform_driver softuart_gpio_driver = {
	.probe	= softuart_gpio_probe,
	SOFTUART_PLATFORM_REMOVE(softuart_platform_remove),
	.driver	= {
		.name		= SOFTUART_NAME,
		.of_match_table	= softuart_of_match,
	},
};

static int __init softuart_init(void)
{
	int ret;

	ret = uart_register_driver(&softuart_uart);
	if (ret)
		return ret;
	ret = platform_driver_register(&softuart_gpio_driver);
	if (ret)
		goto err_uart;
	ret = softuart_loopback_init();
	if (ret)
		goto err_gpio;
	return 0;

err_gpio:
	platform_driver_unregister(&softuart_gpio_driver);
err_uart:
	uart_unregister_driver(&softuart_uart);
	return ret;
}

static void __exit softuart_exit(void)
{
	softuart_loopback_exit();
	platform_driver_unregister(&softuart_gpio_driver);
	uart_unregister_driver(&softuart_uart);
}

module_init(softuart_init);
module_exit(softuart_exit);

MODULE_DESCRIPTION("UART on two GPIO lines, timed by hrtimers, decoded from edge timestamps");
MODULE_LICENSE("GPL");
