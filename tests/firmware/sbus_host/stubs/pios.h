/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Host stand-ins for the few PiOS declarations that LibrePilot's pios_sbus.c
 * and pios_sbus_priv.h use, so the decoder can be compiled and driven on the
 * build machine by sbus_harness.c. Test code only; nothing here runs on a CC3D.
 */
#ifndef SBUS_HOST_PIOS_H
#define SBUS_HOST_PIOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define PIOS_INCLUDE_SBUS
#define PIOS_SBUS_NUM_INPUTS (16 + 2)
#define PIOS_SBUS_MAX_DEVS   1

#define PIOS_Assert(x)       do { if (!(x)) { abort(); } } while (0)
#define PIOS_DEBUG_Assert(x) PIOS_Assert(x)

enum { PIOS_RCVR_TIMEOUT = -1, PIOS_RCVR_INVALID = -2 };

struct pios_rcvr_driver {
    int32_t (*read)(uint32_t id, uint8_t channel);
    uint8_t (*get_quality)(uint32_t id);
};

typedef uint16_t (*pios_com_callback)(uint32_t context, uint8_t *buf, uint16_t buf_len,
                                      uint16_t *headroom, bool *need_yield);

struct pios_com_driver {
    void (*bind_rx_cb)(uint32_t id, pios_com_callback cb, uint32_t context);
};

typedef enum { DISABLE = 0, ENABLE = 1 } FunctionalState;
typedef enum { Bit_RESET = 0, Bit_SET = 1 } BitAction;

typedef struct {
    uint16_t GPIO_Pin;
    int      GPIO_Mode;
    int      GPIO_Speed;
} GPIO_InitTypeDef;

static inline void GPIO_Init(void *gpio, const GPIO_InitTypeDef *init)
{
    (void)gpio; (void)init;
}

static inline void GPIO_WriteBit(void *gpio, uint16_t pin, BitAction a)
{
    (void)gpio; (void)pin; (void)a;
}

static inline bool PIOS_RTC_RegisterTickCallback(void (*cb)(uint32_t), uint32_t id)
{
    (void)cb; (void)id;
    return true;
}

#endif /* SBUS_HOST_PIOS_H */
