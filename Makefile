# stream_ext: PGXS build.  `make`, `make install`, `make installcheck`
# (against a running server with shared_preload_libraries = 'stream_ext').

MODULE_big = stream_ext
EXTENSION = stream_ext
DATA = src/install/stream_ext--0.1.sql

SRCS = $(wildcard src/*.c src/*/*.c)
OBJS = $(SRCS:.c=.o)

# PGXS tracks no header dependencies: an object (or the bitcode JIT inlines)
# left built against an older struct layout breaks the shared memory
# protocol, so any header change rebuilds everything
HEADERS = $(wildcard src/*.h src/*/*.h)

PG_CPPFLAGS = -I$(srcdir)/src
SHLIB_LINK += -lrdkafka

PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare

REGRESS = $(shell cat test/schedule)
REGRESS_OPTS = --inputdir=. --load-extension=stream_ext

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(OBJS) $(OBJS:.o=.bc): $(HEADERS)
