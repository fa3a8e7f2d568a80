/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Shims for the kernel APIs that changed between 6.1 and today. */
#ifndef SOFTUART_COMPAT_H
#define SOFTUART_COMPAT_H

#include <linux/hrtimer.h>
#include <linux/serial_core.h>
#include <linux/version.h>

/* 6.13 added hrtimer_setup() and later kernels dropped hrtimer_init(). */
static inline void softuart_hrtimer_setup(struct hrtimer *timer,
					  enum hrtimer_restart (*fn)(struct hrtimer *),
					  clockid_t clock, enum hrtimer_mode mode)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
	hrtimer_setup(timer, fn, clock, mode);
#else
	hrtimer_init(timer, clock, mode);
	timer->function = fn;
#endif
}

/* 6.10 turned the transmit circ_buf into a kfifo in the tty_port. */
static inline bool softuart_xmit_get(struct uart_port *port, u8 *ch)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
	return uart_fifo_get(port, ch) == 1;
#else
	struct circ_buf *xmit = &port->state->xmit;

	if (uart_circ_empty(xmit))
		return false;
	*ch = xmit->buf[xmit->tail];
	uart_xmit_advance(port, 1);
	return true;
#endif
}

static inline unsigned int softuart_xmit_pending(struct uart_port *port)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
	return kfifo_len(&port->state->port.xmit_fifo);
#else
	return uart_circ_chars_pending(&port->state->xmit);
#endif
}

/*
 * The port lock wrappers arrived in 6.7 (and in some 6.1.y stable releases
 * but not all): take the lock directly before that.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
#define softuart_port_lock(port, flags)		uart_port_lock_irqsave(port, &(flags))
#define softuart_port_unlock(port, flags)	uart_port_unlock_irqrestore(port, flags)
#else
#define softuart_port_lock(port, flags)		spin_lock_irqsave(&(port)->lock, flags)
#define softuart_port_unlock(port, flags)	spin_unlock_irqrestore(&(port)->lock, flags)
#endif

/* uart_ops.set_termios got a const old termios in 6.1. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 1, 0)
#define SOFTUART_OLD_TERMIOS	const struct ktermios
#else
#define SOFTUART_OLD_TERMIOS	struct ktermios
#endif

/*
 * platform_driver.remove returns void from 6.11 on; from 6.3 the void
 * variant was called remove_new; before that remove returned int.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
#define SOFTUART_PLATFORM_REMOVE(fn)	.remove = (fn)
#define SOFTUART_DEFINE_REMOVE(fn)
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
#define SOFTUART_PLATFORM_REMOVE(fn)	.remove_new = (fn)
#define SOFTUART_DEFINE_REMOVE(fn)
#else
#define SOFTUART_PLATFORM_REMOVE(fn)	.remove = fn##_int
#define SOFTUART_DEFINE_REMOVE(fn)					\
static int fn##_int(struct platform_device *pdev)			\
{									\
	fn(pdev);							\
	return 0;							\
}
#endif

#endif /* SOFTUART_COMPAT_H */
