from setuptools import find_packages, setup

setup(
    name="minidl",
    version="0.1.0",
    description="A deep-learning framework written from scratch on NumPy, with Numba CPU kernels and a CuPy GPU path",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["minidl", "minidl.*", "minidl_models", "minidl_models.*"]),
    package_data={"minidl.kernels.cuda_impl": ["*.cu"]},
    install_requires=["numpy>=1.24", "numba>=0.59", "tqdm>=4"],
    extras_require={
        "gpu": ["cupy-cuda12x"],
        "plot": ["matplotlib"],
        "dev": ["pytest>=7", "hypothesis>=6", "safetensors", "onnx", "onnxruntime", "pillow"],
        "safetensors": ["safetensors"],
        "onnx": ["onnx", "onnxruntime"],
        "images": ["pillow"],  # minidl predict on PNG/JPEG files
        "mpi": ["mpi4py>=3.1", "mpich"],  # data-parallel training: mpiexec -n N minidl train ...
        "docs": ["mkdocs>=1.6,<2", "mkdocstrings[python]>=0.26", "pymdown-extensions>=10", "pygments>=2.12"],
    },
    entry_points={"console_scripts": ["minidl = minidl.cli:run"]},
    license="MIT",
)
