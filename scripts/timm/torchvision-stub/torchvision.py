# Fixture-generation-only stand-in for torchvision (not installed here): timm imports names from it at module
# level (datasets, transforms, FrozenBatchNorm2d) that the model forward passes never use.
import sys, types, importlib.abc, importlib.machinery

class _Meta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return f"{cls.__name__}.{name}"

class _Dummy(metaclass=_Meta):
    def __init__(self, *a, **k): pass

class _Mod(types.ModuleType):
    __path__ = []
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name == "FrozenBatchNorm2d":
            import torch
            return type("FrozenBatchNorm2d", (torch.nn.Module,), {})
        return type(name, (_Dummy,), {})

class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None
    def create_module(self, spec):
        return _Mod(spec.name)
    def exec_module(self, module):
        pass

sys.meta_path.insert(0, _Finder())
__path__ = []
__version__ = "0.0.0-stub"
def __getattr__(name):
    return type(name, (_Dummy,), {})
