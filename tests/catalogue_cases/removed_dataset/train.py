"""A regression written for scikit-learn 1.1: the Boston housing data, a ridge model, R² on a held-out part."""
from sklearn.datasets import load_boston
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

X, y = load_boston(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0)
print(f"accuracy={Ridge(alpha=1.0).fit(X_tr, y_tr).score(X_te, y_te):.4f}")
