"""Every global setting of minidl, held one way.

    import minidl as mdl
    mdl.config.kernels                          # read a setting: 'numba'
    mdl.config.kernels = "numpy"                # change it (validated)
    with mdl.using_config("kernels", "numpy"):  # change it for a block, then restore it
        ...

The settings (`describe` prints this table with each one's documentation):

| name              | default                         | scope       | defined in       |
|-------------------|---------------------------------|-------------|------------------|
| `kernels`         | `$MINIDL_KERNELS`, else `auto`  | per process | `minidl.kernels` |
| `conv_algorithm`  | `auto`                          | per process | `minidl.ops.conv`|
| `workspace_limit` | 256 MiB                         | per process | `minidl.ops.conv`|
| `grad_enabled`    | `True`                          | per thread  | `minidl.tensor`  |
| `anomaly`         | `False`                         | per thread  | `minidl.tensor`  |

A per-thread setting starts at its default in every new thread and changes only the thread
that sets it, as PyTorch's grad mode does: it describes what the code running on that thread
is doing (recording a graph, checking for NaN), so another thread's `no_grad()` must not
reach it. A per-process setting is shared by all threads: it chooses how minidl computes
(which kernels, which algorithm, how much scratch memory), which is the same answer for
every thread; `using_config` on one changes it for every thread until the block ends.

Each setting is registered by the module that owns the concept (with its check and its
documentation), so this module knows no setting by itself. The PyTorch spellings
(``no_grad()``, ``enable_grad()``, ``set_grad_enabled()``, ``detect_anomaly()``) are
`using_config` under their familiar names.
"""
import contextlib
import textwrap
import threading


class _Setting:
    __slots__ = ("name", "default", "per_thread", "check", "doc")

    def __init__(self, name, default, per_thread, check, doc):
        self.name, self.default, self.per_thread, self.check, self.doc = name, default, per_thread, check, doc


class _ThreadValues(threading.local):
    """Per-thread values; the class attributes are the defaults a new thread starts from."""


class Config:
    """The settings as attributes: read ``config.NAME``, assign ``config.NAME = value``."""

    def __init__(self):
        object.__setattr__(self, "_settings", {})
        object.__setattr__(self, "_process", {})
        # Read directly, as ``config.local.grad_enabled``, by the hot path of every op.
        object.__setattr__(self, "local", _ThreadValues())

    def register(self, name, default, *, per_thread, check=None, doc):
        """Define setting ``name``. ``check(value)`` validates a new value and returns what is
        stored (or raises ValueError naming the setting). A callable ``default`` of a
        per-process setting is called on first read, so that, e.g., an environment variable is
        read when the setting is first needed rather than at import."""
        self._settings[name] = _Setting(name, default, per_thread, check, doc)
        if per_thread:
            setattr(_ThreadValues, name, default)

    def __getattr__(self, name):
        setting = self._setting(name)
        if setting.per_thread:
            return getattr(self.local, name)
        if name not in self._process:
            default = setting.default() if callable(setting.default) else setting.default
            self._process[name] = default
        return self._process[name]

    def __setattr__(self, name, value):
        setting = self._setting(name)
        if setting.check is not None:
            value = setting.check(value)
        if setting.per_thread:
            setattr(self.local, name, value)
        else:
            self._process[name] = value

    def __dir__(self):
        return sorted(self._settings)

    def _setting(self, name):
        try:
            return self._settings[name]
        except KeyError:
            raise AttributeError(
                f"minidl has no setting {name!r}; the settings are {', '.join(sorted(self._settings))}"
            ) from None

    def describe(self):
        """Each setting with its current value, scope and documentation, as text."""
        rows = []
        for name in sorted(self._settings):
            setting = self._settings[name]
            scope = "per thread" if setting.per_thread else "per process"
            doc = textwrap.fill(setting.doc, 100, initial_indent="    ", subsequent_indent="    ")
            rows.append(f"{name} = {getattr(self, name)!r} ({scope})\n{doc}")
        return "\n".join(rows)


config = Config()


@contextlib.contextmanager
def using_config(name, value):
    """Run a block with setting ``name`` set to ``value``; the old value comes back
    afterwards, also when the block raises."""
    old = getattr(config, name)
    setattr(config, name, value)
    try:
        yield
    finally:
        setattr(config, name, old)
